"""training.import_model: a state dict trained elsewhere becomes a run that training.evaluate evaluates."""
import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emotion_core.model import ModelConfig, build_model, load_checkpoint
from tests.test_class_sets import SIX, _file_bytes, _run_cli, write_images_dataset
from training import evaluate, import_model


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_images_dataset(tmp_path_factory.mktemp("import") / "dataset", SIX)


def small_state(classes=SIX, seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights 'trained elsewhere': a small torchvision VGG with the head for `classes`."""
    torch.manual_seed(seed)
    model = build_model(ModelConfig(arch="vgg_small", fc=str(len(classes)), input_size=32, pretrained=False,
                                    classes=list(classes)))
    return {k: v.clone() for k, v in model.state_dict().items()}


def run_import(argv: list[str]) -> Path:
    return import_model.main(import_model.get_args_parser().parse_args(argv))


def base_args(weights: Path, dataset: Path, out: Path, arch: str = "vgg_small") -> list[str]:
    """EmoLens's small VGG with the paper's head (what training.train makes); other arches: torchvision's head."""
    head = ["--head", "paper"] if arch == "vgg_small" else []
    return ["--arch", arch, "--weights", str(weights), "--dataset", str(dataset), "--out", str(out),
            "--input-size", "32", *head]


@pytest.mark.parametrize("prefix", ["", "module."])
def test_a_state_dict_with_or_without_module_prefix_imports_and_evaluates(dataset, tmp_path, prefix):
    state = small_state()
    weights = tmp_path / "trained.pth"
    torch.save({prefix + k: v for k, v in state.items()}, weights)
    out = run_import(base_args(weights, dataset, tmp_path / "run"))
    model, config, payload = load_checkpoint(out / "checkpoint.pt")
    assert config.arch == "vgg_small" and config.classes == list(SIX.names) and config.input_size == 32
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert payload["source"]["kind"] == "imported model"
    assert json.loads((out / "run.json").read_text())["source"] == "imported model"

    metrics = evaluate.main(evaluate.get_args_parser().parse_args(
        ["--run", str(out), "--dataset", str(dataset), "--split", "dev,test", "--workers", "0", "--device", "cpu",
         "--no-attributes"]))
    assert metrics["classes"]["names"] == list(SIX.names)
    assert metrics["splits"]["test"]["n_images"] == 2 * len(SIX)
    predictions = pd.read_parquet(out / "predictions.parquet")
    cams = np.load(out / "cams.npy")
    assert cams.shape == (len(predictions), 2, 4, 4)  # the last conv sees 32 px after three max-pools
    assert np.allclose(predictions[[f"p_{c}" for c in SIX.names]].sum(axis=1), 1, atol=1e-5)


def test_a_training_checkpoint_holding_the_state_dict_under_model_imports(dataset, tmp_path):
    weights = tmp_path / "checkpoint.pt"
    torch.save({"model": small_state(), "epoch": 7, "args": {"lr": 0.1}}, weights)
    out = run_import(base_args(weights, dataset, tmp_path / "run"))
    assert (out / "checkpoint.pt").is_file()


def test_a_torchvision_reference_script_checkpoint_with_argparse_args_imports(dataset, tmp_path):
    """torchvision's references/classification/train.py saves model, optimizer, lr_scheduler, epoch
    and its argparse.Namespace; weights_only=True refuses a Namespace unless it is allowed."""
    state = small_state(seed=4)
    model = build_model(ModelConfig(arch="vgg_small", fc="6", input_size=32, pretrained=False, classes=list(SIX)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
    args = argparse.Namespace(model="vgg_small", lr=0.1, epochs=90, data_path="/data/fi", amp=False, weights=None)
    weights = tmp_path / "model_89.pth"
    torch.save({"model": state, "optimizer": optimizer.state_dict(), "lr_scheduler": scheduler.state_dict(),
                "epoch": 89, "args": args}, weights)
    loaded, _, _ = load_checkpoint(run_import(base_args(weights, dataset, tmp_path / "run")) / "checkpoint.pt")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())


def test_safetensors_weights_import(dataset, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    state = small_state(seed=3)
    weights = tmp_path / "trained.safetensors"
    safetensors.save_file({"module." + k: v.contiguous() for k, v in state.items()}, str(weights))
    model, _, _ = load_checkpoint(run_import(base_args(weights, dataset, tmp_path / "run")) / "checkpoint.pt")
    assert torch.equal(model.state_dict()["classifier.1.weight"], state["classifier.1.weight"])


def test_a_shape_mismatch_is_one_line_naming_the_key_and_both_shapes_and_writes_nothing(
        dataset, tmp_path, capsys, monkeypatch):
    weights = tmp_path / "eight_classes.pth"
    torch.save(small_state(classes=[f"c{i}" for i in range(8)]), weights)  # trained for 8 classes, dataset has 6
    out = tmp_path / "run"
    err = _run_cli("training.import_model", base_args(weights, dataset, out), capsys, monkeypatch)
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "classifier.1.weight has shape (8, 384) in the file but (6, 384) in the model" in err
    assert "6 classes (surprise, joy, fear, anger, disgust, sadness)" in err
    assert not out.exists()


def test_missing_and_unexpected_keys_are_named(dataset, tmp_path, capsys, monkeypatch):
    state = small_state()
    state["extra.weight"] = torch.zeros(2)
    del state["features.0.weight"]
    weights = tmp_path / "odd.pth"
    torch.save(state, weights)
    err = _run_cli("training.import_model", base_args(weights, dataset, tmp_path / "run"), capsys, monkeypatch)
    assert err.count("\n") == 1
    assert "1 missing (first 'features.0.weight')" in err and "1 unexpected (first 'extra.weight')" in err
    assert not (tmp_path / "run").exists()


def test_a_pickled_model_object_is_refused_by_weights_only(dataset, tmp_path, capsys, monkeypatch):
    weights = tmp_path / "whole_model.pth"
    torch.save(build_model(ModelConfig(arch="vgg_small", fc="6", input_size=32, pretrained=False, classes=list(SIX))),
               weights)
    err = _run_cli("training.import_model", base_args(weights, dataset, tmp_path / "run"), capsys, monkeypatch)
    assert err.count("\n") == 1 and "weights_only=True" in err and "state_dict()" in err
    assert "\x1b" not in err  # torch's message has ANSI bold codes
    assert "it pickles emotion_core." in err or "it pickles torchvision." in err  # names what was refused


def test_an_existing_run_is_kept_unless_overwrite(dataset, tmp_path, capsys, monkeypatch):
    weights = tmp_path / "trained.pth"
    torch.save(small_state(), weights)
    out = run_import(base_args(weights, dataset, tmp_path / "run"))
    (out / "metrics.json").write_text("{}")  # as if evaluated
    before = _file_bytes(out)
    err = _run_cli("training.import_model", base_args(weights, dataset, out), capsys, monkeypatch)
    assert "already holds a run" in err and _file_bytes(out) == before
    run_import(base_args(weights, dataset, out) + ["--overwrite"])
    assert not (out / "metrics.json").exists()  # made by the previous model


def test_overwrite_removes_the_previous_models_training_files(dataset, tmp_path):
    """last.pt, history.csv and the evaluation were made by the previous model: a later
    `training.train --resume` would continue that model, and the dashboard would show its results."""
    weights = tmp_path / "trained.pth"
    torch.save(small_state(seed=1), weights)
    out = tmp_path / "run"
    out.mkdir()
    previous = ("last.pt", "history.csv", "metrics.json", "predictions.parquet", "cams.npy", "embeddings.npy")
    for name in previous:
        (out / name).write_bytes(b"previous model")
    (out / "cache").mkdir()
    (out / "cache" / "overlay.png").write_bytes(b"previous model")
    run_import(base_args(weights, dataset, out) + ["--overwrite"])
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "run.json"]


def test_a_folder_with_only_last_pt_is_a_run_kept_unless_overwrite(dataset, tmp_path, capsys, monkeypatch):
    weights = tmp_path / "trained.pth"
    torch.save(small_state(), weights)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"an interrupted training run")
    err = _run_cli("training.import_model", base_args(weights, dataset, tmp_path / "run"), capsys, monkeypatch)
    assert "already holds a run (last.pt)" in err


def test_out_naming_an_existing_file_is_one_line(dataset, tmp_path, capsys, monkeypatch):
    weights = tmp_path / "trained.pth"
    torch.save(small_state(), weights)
    (tmp_path / "afile").write_text("x")
    err = _run_cli("training.import_model", base_args(weights, dataset, tmp_path / "afile"), capsys, monkeypatch)
    assert err == f"error: --out {tmp_path / 'afile'} is a file, not a folder; choose a run dir\n"


@pytest.fixture(scope="module")
def resnet50_weights(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A torchvision ResNet-50 fine-tuned elsewhere for the six classes, saved from DistributedDataParallel."""
    from torchvision.models import resnet50

    torch.manual_seed(0)
    state = resnet50(weights=None, num_classes=len(SIX)).state_dict()
    weights = tmp_path_factory.mktemp("resnet50") / "resnet50.pth"
    torch.save({"module." + k: v for k, v in state.items()}, weights)
    return weights, state


def test_a_torchvision_resnet50_state_dict_imports_and_evaluates_with_grad_cam(dataset, tmp_path, resnet50_weights):
    weights, state = resnet50_weights
    out = run_import(base_args(weights, dataset, tmp_path / "run", arch="resnet50"))
    model, config, _ = load_checkpoint(out / "checkpoint.pt")
    assert config.arch == "resnet50" and config.head == "linear"
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    metrics = evaluate.main(evaluate.get_args_parser().parse_args(
        ["--run", str(out), "--dataset", str(dataset), "--workers", "0", "--device", "cpu", "--no-attributes"]))
    assert metrics["splits"]["test"]["n_images"] == 2 * len(SIX)
    assert np.load(out / "cams.npy").shape == (2 * len(SIX), 2, 1, 1)  # layer4's grid at 32 px


def test_the_wrong_head_is_one_line_that_names_the_other(dataset, tmp_path, resnet50_weights, capsys, monkeypatch):
    argv = base_args(resnet50_weights[0], dataset, tmp_path / "run", arch="resnet50") + ["--head", "paper"]
    err = _run_cli("training.import_model", argv, capsys, monkeypatch)
    assert err.count("\n") == 1 and "2 unexpected (first 'fc.weight')" in err and "try --head linear" in err
    assert not (tmp_path / "run").exists()
