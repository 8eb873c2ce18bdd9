"""Class sets are data: a run on a 6-class dataset carries its classes from the dataset dir
through training, the checkpoint and evaluation; a checkpoint refuses another class set;
datasets and checkpoints from before class sets are FI's."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from emotion_core.dataset import DatasetError, read_dataset, read_manifest, write_dataset
from emotion_core.evaluation import evaluate_run
from emotion_core.labels import EMOTIONS, MIKELS8, ClassSet, run_classes
from emotion_core.model import ModelConfig, build_model, read_checkpoint, save_checkpoint
from emotion_core.predict import Predictor
from tests.conftest import save_noise_image
from training.schedule import Stage
from training.train import TrainConfig, train

# Not alphabetical, with display names: the order and the names must come from classes.json.
SIX = ClassSet(("surprise", "joy", "fear", "anger", "disgust", "sadness"),
               display=("Surprise", "Joy", "Fear", "Anger", "Disgust", "Sadness (grief)"), kind="ekman6")
PER_SPLIT = {"train": 3, "dev": 2, "test": 2}  # images per class


def write_images_dataset(out: Path, classes: ClassSet, *, with_classes_file: bool = True) -> Path:
    """Noise images, PER_SPLIT of each class per split, as a dataset dir."""
    rows = []
    for k, label in enumerate(classes.names):
        for split, count in PER_SPLIT.items():
            for i in range(count):
                name = f"{label}_{split}_{i}.png"
                save_noise_image(out / "images" / name, seed=100 * k + 10 * len(rows) + i)
                rows.append({"image_id": name[:-4], "path": f"images/{name}", "label": label, "split": split,
                             "agree": 3, "disagree": 1, f"votes_{label}": 3})
    write_dataset(out, pd.DataFrame(rows), {}, classes)
    if not with_classes_file:
        (out / "classes.json").unlink()
    return out


def small_config(dataset: Path, out: Path, **overrides) -> TrainConfig:
    base = dict(dataset=str(dataset), out=str(out), arch="vgg_small", input_size=32, pretrained=False,
                batch_size=6, workers=0, device="cpu", seed=2, eval_split="dev,test")
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def six_run(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset dir, run dir): one epoch of a 6-class run, class-weighted and balanced
    (both count classes), evaluated on dev and test."""
    root = tmp_path_factory.mktemp("six")
    dataset = write_images_dataset(root / "dataset", SIX)
    train(small_config(dataset, root / "run", class_weighted=True, balanced_sampler=True),
          [Stage("all", ["all"], 1e-3, 1)])
    return dataset, root / "run"


def test_a_six_class_run_keeps_its_classes_from_training_to_metrics(six_run):
    _, run = six_run
    names = list(SIX.names)
    checkpoint = read_checkpoint(run / "checkpoint.pt")
    assert checkpoint["classes"] == SIX.to_dict() and checkpoint["model"]["fc"] == "6"
    assert checkpoint["state_dict"]["classifier.1.weight"].shape[0] == 6
    assert json.loads((run / "run.json").read_text())["classes"] == SIX.to_dict()
    history = pd.read_csv(run / "history.csv")
    assert [c for c in history if c.startswith("dev_recall_")] == [f"dev_recall_{n}" for n in names]

    predictions = pd.read_parquet(run / "predictions.parquet")
    assert [c for c in predictions if c.startswith("p_")] == [f"p_{n}" for n in names]
    assert (predictions["label_idx"] == predictions["label"].map(names.index)).all()
    assert (predictions["pred"] == [names[i] for i in predictions["pred_idx"]]).all()
    probabilities = predictions[[f"p_{n}" for n in names]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-4)
    assert (probabilities.argmax(1) == predictions["pred_idx"]).all()
    assert [c for c in predictions if c.startswith("votes_")] == [f"votes_{n}" for n in names]

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["classes"] == SIX.to_dict()
    for split in ("dev", "test"):
        values = metrics["splits"][split]
        assert values["classes"] == names and values["n_images"] == 6 * PER_SPLIT[split]
        assert [row["emotion"] for row in values["per_class"]] == names
        assert [row["support"] for row in values["per_class"]] == [PER_SPLIT[split]] * 6
        assert np.array(values["confusion_matrix"]).shape == (6, 6)
    assert list(metrics["split_counts"]) == names and metrics["split_counts"]["joy"] == PER_SPLIT


def test_run_classes_reads_metrics_then_the_checkpoint_then_defaults_to_fi(six_run, tmp_path):
    _, run = six_run
    assert run_classes(run) == SIX
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    del metrics["classes"]  # an evaluation from before class sets
    (copy / "metrics.json").write_text(json.dumps(metrics))
    assert run_classes(copy) == SIX  # from the checkpoint
    (copy / "checkpoint.pt").unlink()
    assert run_classes(copy) == MIKELS8


def test_the_live_model_uses_the_checkpoints_classes(six_run):
    dataset, run = six_run
    predictor = Predictor.from_checkpoint(run / "checkpoint.pt")
    assert predictor.classes == SIX
    image = Image.open(next((dataset / "images").iterdir()))
    probabilities, cam = predictor.predict_with_cam(image, None)
    assert probabilities.shape == (6,) and cam.max() <= 1.0
    _, joy_cam = predictor.predict_with_cam(image, "Joy")  # a display name or id of this class set
    _, joy_cam_by_index = predictor.predict_with_cam(image, SIX.index["joy"])
    np.testing.assert_array_equal(joy_cam, joy_cam_by_index)
    with pytest.raises(ValueError, match="unknown emotion 'awe'; valid: surprise, joy, fear"):
        predictor.predict_with_cam(image, "awe")


def _run_cli(module_name: str, argv: list[str], capsys, monkeypatch) -> str:
    """The program's main through run_main, as `python -m training.<name>` runs it: (stderr)."""
    import importlib

    from training.cli import run_main

    module = importlib.import_module(module_name)
    monkeypatch.delenv("EMOLENS_DEBUG", raising=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        run_main(module.main, module.get_args_parser().parse_args(argv))
    assert stopped.value.code == 2
    return capsys.readouterr().err


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("other", ["fi", "reordered"])
def test_evaluate_refuses_a_dataset_of_another_class_set_in_one_line(six_run, tmp_path, capsys, monkeypatch, other):
    dataset, run = six_run
    if other == "fi":  # FI's eight, written before class sets (no classes.json)
        classes = MIKELS8
        target = write_images_dataset(tmp_path / "fi", MIKELS8, with_classes_file=False)
    else:  # the same six names in another order: the head's outputs would mean other classes
        classes = ClassSet(tuple(sorted(SIX.names)))
        target = tmp_path / "reordered"
        shutil.copytree(dataset, target)
        (target / "classes.json").write_text(json.dumps(classes.to_dict()))
    before = _file_bytes(run)
    err = _run_cli("training.evaluate", ["--run", str(run), "--dataset", str(target), "--workers", "0",
                                         "--device", "cpu"], capsys, monkeypatch)
    expected = (f"error: checkpoint {run / 'checkpoint.pt'} was trained on 6 classes "
                f"(surprise, joy, fear, anger, disgust, sadness); dataset {target} has "
                f"{len(classes)} classes ({', '.join(classes.names)})\n")
    assert err == expected
    assert _file_bytes(run) == before


def test_resume_refuses_a_dataset_of_another_class_set(six_run, tmp_path, capsys, monkeypatch):
    _, run = six_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    fi = write_images_dataset(tmp_path / "fi", MIKELS8)
    before = _file_bytes(copy)
    err = _run_cli("training.train", ["--dataset", str(fi), "--out", str(copy), "--arch", "vgg_small",
                                      "--input-size", "32", "--no-pretrained", "--batch-size", "6", "--workers", "0",
                                      "--device", "cpu", "--resume"], capsys, monkeypatch)
    assert err.count("\n") == 1 and err.startswith(f"error: cannot resume {copy}: the class set differs from the "
                                                   "saved run (surprise, joy, fear, anger, disgust, sadness saved, "
                                                   "amusement, anger, awe, "), err
    assert _file_bytes(copy) == before


def test_a_classes_file_with_a_duplicate_name_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    dataset = write_images_dataset(tmp_path / "dataset", SIX)
    (dataset / "classes.json").write_text(json.dumps({"names": ["joy", "fear", "Joy"]}))
    err = _run_cli("training.train", ["--dataset", str(dataset), "--out", str(tmp_path / "run"),
                                      "--arch", "vgg_small", "--no-pretrained", "--device", "cpu"], capsys, monkeypatch)
    assert err == f"error: {dataset / 'classes.json'}: duplicate class name 'joy' in the class set\n"
    assert not (tmp_path / "run").exists()
    with pytest.raises(DatasetError, match="duplicate class name 'joy'"):
        read_dataset(dataset)


def test_a_label_outside_the_class_set_is_refused(tmp_path):
    dataset = write_images_dataset(tmp_path / "dataset", SIX)
    (dataset / "classes.json").write_text(json.dumps({"names": ["joy", "fear", "anger"]}))
    with pytest.raises(DatasetError, match=r"manifest.parquet: unknown label 'disgust'; the dataset's classes: "
                                           r"joy, fear, anger$"):
        read_manifest(dataset)


def test_old_dataset_and_checkpoint_without_classes_are_fi(tmp_path):
    """A dataset dir without classes.json and a checkpoint that names no class set (or a
    bare list of FI's names) evaluate as FI's eight."""
    dataset = write_images_dataset(tmp_path / "fi", MIKELS8, with_classes_file=False)
    manifest, classes = read_dataset(dataset)
    assert classes == MIKELS8 and (manifest["label_idx"] == manifest["label"].map(EMOTIONS.index)).all()
    config = ModelConfig(arch="vgg_small", input_size=32)
    for old_style in ("no classes", "a list of names"):
        run = tmp_path / old_style
        run.mkdir()
        save_checkpoint(run / "checkpoint.pt", build_model(config), config)
        payload = read_checkpoint(run / "checkpoint.pt")
        if old_style == "no classes":
            del payload["classes"], payload["model"]["classes"]
        else:
            payload["classes"] = list(EMOTIONS)
        torch.save(payload, run / "checkpoint.pt")
        assert run_classes(run) == MIKELS8
        metrics = evaluate_run(run, dataset, splits=("test",), attributes=False)
        assert metrics["classes"] == MIKELS8.to_dict() and metrics["splits"]["test"]["classes"] == list(EMOTIONS)
        predictions = pd.read_parquet(run / "predictions.parquet")
        assert [c for c in predictions if c.startswith("p_")] == [f"p_{e}" for e in EMOTIONS]


def test_list_columns_read_back_as_lists(tmp_path):
    """EmoSet's attr_object is a list per image; parquet returns numpy arrays."""
    manifest = pd.DataFrame({"image_id": ["a", "b"], "path": ["a.png", "b.png"], "label": ["joy", "fear"],
                             "split": ["train", "test"], "attr_object": [["Mountain", "Sky"], []]})
    write_dataset(tmp_path, manifest, {}, SIX)
    back = read_manifest(tmp_path)
    assert back["attr_object"].tolist() == [["Mountain", "Sky"], []]
    assert all(type(v) is list for v in back["attr_object"])
    json.dumps(back["attr_object"].tolist())


def test_the_paper_grid_ends_in_the_class_count():
    from training.search import paper_grid

    assert {c["fc"] for c in paper_grid()} == {"8", "8x8", "16x8"}
    assert {c["fc"] for c in paper_grid(6)} == {"6", "8x6", "16x6"}
