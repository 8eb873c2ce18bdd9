"""training.import_model: a state dict trained elsewhere becomes a run that training.evaluate evaluates."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from emotion_core.model import ARCHITECTURES, ModelConfig, build_model, load_checkpoint
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


@pytest.fixture(scope="module")
def resnet50_weights(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A torchvision ResNet-50 fine-tuned elsewhere for the six classes, saved from DistributedDataParallel."""
    from torchvision.models import resnet50

    torch.manual_seed(0)
    state = resnet50(weights=None, num_classes=len(SIX)).state_dict()
    weights = tmp_path_factory.mktemp("resnet50") / "resnet50.pth"
    torch.save({"module." + k: v for k, v in state.items()}, weights)
    return weights, state


@pytest.mark.skipif("resnet50" not in ARCHITECTURES, reason="this EmoLens has no resnet50 yet")
def test_a_torchvision_resnet50_state_dict_imports_and_evaluates_with_grad_cam(dataset, tmp_path, resnet50_weights):
    weights, state = resnet50_weights
    out = run_import(base_args(weights, dataset, tmp_path / "run", arch="resnet50"))
    model, config, _ = load_checkpoint(out / "checkpoint.pt")
    assert config.arch == "resnet50" and getattr(config, "head", "linear") == "linear"
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    metrics = evaluate.main(evaluate.get_args_parser().parse_args(
        ["--run", str(out), "--dataset", str(dataset), "--workers", "0", "--device", "cpu", "--no-attributes"]))
    assert metrics["splits"]["test"]["n_images"] == 2 * len(SIX)
    assert np.load(out / "cams.npy").shape == (2 * len(SIX), 2, 1, 1)  # layer4's grid at 32 px


@pytest.mark.skipif("head" not in ModelConfig.__dataclass_fields__, reason="this EmoLens has one head only")
def test_the_wrong_head_is_one_line_that_names_the_other(dataset, tmp_path, resnet50_weights, capsys, monkeypatch):
    argv = base_args(resnet50_weights[0], dataset, tmp_path / "run", arch="resnet50") + ["--head", "paper"]
    err = _run_cli("training.import_model", argv, capsys, monkeypatch)
    assert err.count("\n") == 1 and "2 unexpected (first 'fc.weight')" in err and "try --head linear" in err
    assert not (tmp_path / "run").exists()
