import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from emotion_core.dataset import read_dataset
from emotion_core.evaluation import evaluate_frame
from emotion_core.labels import EMOTIONS
from emotion_core.model import load_checkpoint
from emotion_core.predict import Predictor
from tests.conftest import write_demo_dataset
from training.cli import run_main
from training.crossval import (CROSSVAL_DIR, CROSSVAL_FILE, OOF_FILE, PLAN_FILE, CrossvalConfig, _check_same_plan,
                               assign_folds, crossval, get_args_parser, main)
from training.schedule import Stage
from training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
FOLDS = 2


def _train_base_run(root: Path) -> Path:
    """A tiny run to repeat: 32 train images (4 per class), 21 dev. No batch norm, dropout or
    augmentation, so that one process and two (DDP) take the same steps."""
    dataset = write_demo_dataset(root / "data", 6, size=32, seed=2, split=(0.66, 0.34, 0.0))
    config = TrainConfig(dataset=str(dataset), out=str(root / "run"), arch="vgg_small", input_size=32,
                         pretrained=False, batch_norm=False, dropout=0.0, augment=False, batch_size=8, workers=0,
                         device="cpu", evaluate=False, seed=4)
    train(config, [Stage("all", ["all"], 1e-3, 1)])
    return root / "run"


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    return _train_base_run(tmp_path_factory.mktemp("crossval"))


@pytest.fixture(scope="module")
def crossvalidated(base_run) -> Path:
    from emotion_core.gradcam import GradCam

    def no_grad_cam(*args, **kwargs):
        raise AssertionError("cross-validation computed Grad-CAM maps it never uses")

    with pytest.MonkeyPatch.context() as patch:  # the held-out folds are predicted without maps
        patch.setattr(GradCam, "maps", no_grad_cam)
        crossval(CrossvalConfig(run=str(base_run), folds=FOLDS, seed=1))
    return base_run


def _train_ids(fold_dir: Path) -> set[str]:
    """The images fold model trained on: its own run.json names its dataset."""
    dataset = json.loads((fold_dir / "run.json").read_text())["config"]["dataset"]
    manifest, _ = read_dataset(dataset)
    return set(manifest.loc[manifest["split"] == "train", "image_id"])


def test_each_image_is_predicted_once_by_the_model_that_never_saw_it(crossvalidated):
    oof = pd.read_parquet(crossvalidated / OOF_FILE)
    probabilities = [f"p_{e}" for e in EMOTIONS]
    assert list(oof.columns) == ["image_id", "path", "split", "label", "label_idx", "fold", *probabilities]
    manifest, classes = read_dataset(json.loads((crossvalidated / "run.json").read_text())["config"]["dataset"])
    train_rows = manifest[manifest["split"] == "train"]
    assert oof["image_id"].tolist() == train_rows["image_id"].tolist()  # each once, in manifest order
    np.testing.assert_allclose(oof[probabilities].sum(axis=1), 1.0, atol=1e-5)
    assert sorted(oof["fold"].unique()) == list(range(FOLDS))
    # stratified: each class spread over the folds as evenly as its 4 images allow
    assert oof.groupby("label")["fold"].nunique().eq(FOLDS).all()
    for fold in range(FOLDS):
        fold_dir = crossvalidated / "crossval" / f"fold_{fold}"
        held_out = oof[oof["fold"] == fold]
        trained_on = _train_ids(fold_dir)
        assert not trained_on & set(held_out["image_id"])
        assert trained_on | set(held_out["image_id"]) == set(train_rows["image_id"])  # the other folds, all of them
        # the probabilities are that fold model's: predict its held-out images again
        model, config, _ = load_checkpoint(fold_dir / "checkpoint.pt")
        again = evaluate_frame(Predictor(model, config.input_size, "cpu", classes=classes),
                               train_rows[train_rows["image_id"].isin(held_out["image_id"])]).table
        np.testing.assert_allclose(again[probabilities].to_numpy(), held_out[probabilities].to_numpy(), atol=1e-5)
    summary = json.loads((crossvalidated / CROSSVAL_FILE).read_text())
    assert [f["heldout_images"] for f in summary["per_fold"]] == oof["fold"].value_counts().sort_index().tolist()
    assert summary["recipe"]["arch"] == "vgg_small" and summary["recipe"]["schedule"][0]["epochs"] == 1


def test_a_rerun_skips_finished_folds_and_finishes_the_rest(crossvalidated):
    folds = crossvalidated / "crossval"
    before = pd.read_parquet(crossvalidated / OOF_FILE)
    stamps = {f: (folds / f"fold_{f}" / "checkpoint.pt").stat().st_mtime_ns for f in range(FOLDS)}
    # fold 1 as if killed after its last epoch: no held-out predictions, run.json not finished
    (folds / "fold_1" / "heldout.parquet").unlink()
    run_json = folds / "fold_1" / "run.json"
    run_json.write_text(json.dumps({k: v for k, v in json.loads(run_json.read_text()).items() if k != "finished"}))
    crossval(CrossvalConfig(run=str(crossvalidated), folds=FOLDS, seed=1))
    assert {f: (folds / f"fold_{f}" / "checkpoint.pt").stat().st_mtime_ns for f in range(FOLDS)} == stamps
    pd.testing.assert_frame_equal(pd.read_parquet(crossvalidated / OOF_FILE), before)


def _one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, get_args_parser().parse_args(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


def test_more_folds_than_images_of_a_class_is_one_line_before_training(base_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(base_run, run, ignore=shutil.ignore_patterns("crossval*", "oof_*"))
    err = _one_line_error(capsys, ["--run", str(run), "--folds", "5"])
    assert "--folds 5 is more than the 4 'amusement' images of the train split" in err
    assert "use --folds 4 or fewer" in err
    assert not (run / "crossval").exists()


def test_a_class_with_one_image_cannot_be_cross_validated_whatever_the_folds():
    labels = pd.Series(["anger"] * 6 + ["awe"] + ["fear"] * 4)
    with pytest.raises(ValueError) as err:
        assign_folds(labels, folds=2, seed=0, split_name="the train split")
    assert str(err.value).startswith("cross-validation needs at least 2 images of every class, but the train split "
                                     "has 1 'awe' image")
    assert "--folds" not in str(err.value)  # no number of folds would do
    assert np.bincount(assign_folds(labels[labels != "awe"], folds=2, seed=0)).tolist() == [5, 5]


def test_a_plan_file_with_a_key_this_version_lacks_is_one_line(tmp_path):
    identity = {"folds": 2, "seed": 1, "splits": ["train"], "dataset": "/data", "dataset_manifest_sha256": "ab"}
    plan = SimpleNamespace(run_dir=tmp_path, identity=lambda: identity)
    (tmp_path / CROSSVAL_DIR).mkdir()
    (tmp_path / CROSSVAL_DIR / PLAN_FILE).write_text(json.dumps({**identity, "fold_scheme": "grouped"}))
    with pytest.raises(ValueError, match=r"another fold_scheme \(grouped there, None now\)"):
        _check_same_plan(plan, SimpleNamespace(is_main=True))
    (tmp_path / CROSSVAL_DIR / PLAN_FILE).write_text(json.dumps(identity))
    _check_same_plan(plan, SimpleNamespace(is_main=True))  # the same cross-validation continues


def test_bad_input_is_one_line(crossvalidated, base_run, tmp_path, capsys):
    assert "--folds must be at least 2" in _one_line_error(capsys, ["--run", str(base_run), "--folds", "1"])
    assert "no run.json" in _one_line_error(capsys, ["--run", str(tmp_path), "--folds", "2"])
    assert "dev is where" in _one_line_error(capsys, ["--run", str(base_run), "--split", "dev"])
    # folds of another assignment would be mixed with these
    err = _one_line_error(capsys, ["--run", str(crossvalidated), "--folds", str(FOLDS), "--seed", "2"])
    assert "another seed (1 there, 2 now)" in err
    # a run of other classes than its dataset
    run = tmp_path / "other_classes"
    run.mkdir()
    meta = json.loads((base_run / "run.json").read_text())
    meta["classes"] = {"names": ["happy", "sad"]}
    (run / "run.json").write_text(json.dumps(meta))
    err = _one_line_error(capsys, ["--run", str(run), "--folds", "2"])
    assert "was trained on 2 classes (happy, sad)" in err and "has 8 classes" in err


def test_torchrun_two_processes_match_one(crossvalidated, tmp_path):
    run = tmp_path / "two"
    shutil.copytree(crossvalidated, run, ignore=shutil.ignore_patterns("crossval*", "oof_*"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    # --run-dir: torchrun's own parser would take --run for its --run-path
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    "-m", "training.crossval", "--run-dir", str(run), "--folds", str(FOLDS), "--seed", "1",
                    "--device", "cpu"], check=True, cwd=ROOT, env=env, capture_output=True)
    one, two = pd.read_parquet(crossvalidated / OOF_FILE), pd.read_parquet(run / OOF_FILE)
    assert two["image_id"].tolist() == one["image_id"].tolist() and two["fold"].tolist() == one["fold"].tolist()
    probabilities = [c for c in one.columns if c.startswith("p_")]
    # the same steps as one process (test_train's DDP test): the probabilities agree to rounding
    np.testing.assert_allclose(two[probabilities], one[probabilities], atol=1e-3)
