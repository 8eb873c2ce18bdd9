import os
import urllib.error

import pytest
import torch
from torch import nn

from emotion_core.backbones import BACKBONES
from emotion_core.labels import EMOTIONS, MIKELS8, ClassSet
from emotion_core.model import (
    CheckpointError,
    ModelConfig,
    WeightsUnavailableError,
    build_model,
    load_checkpoint,
    save_checkpoint,
)

EKMAN6 = ClassSet(("anger", "disgust", "fear", "joy", "sadness", "surprise"), kind="ekman6")


@pytest.mark.parametrize("spec, linear_sizes", [("8", [8]), ("8x8", [8, 8]), ("16x8", [16, 8])])
def test_head_shapes(spec, linear_sizes):
    model = build_model(ModelConfig(arch="vgg_small", fc=spec, input_size=64))
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == linear_sizes
    assert linears[0].in_features == 96 * 4 * 4
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 8)


def test_bad_fc_spec():
    with pytest.raises(ValueError, match="must end in 8"):
        build_model(ModelConfig(arch="vgg_small", fc="16x4", input_size=64))


def test_vgg19_smoke_small_resolution():
    model = build_model(ModelConfig(pretrained=False, input_size=64)).eval()
    assert len([m for m in model.features if isinstance(m, nn.Conv2d)]) == 16
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 8)


def test_checkpoint_round_trip_and_refusals(tmp_path):
    config = ModelConfig(arch="vgg_small", fc="16x8", input_size=64)
    model = build_model(config).eval()
    save_checkpoint(tmp_path / "c.pt", model, config, epoch=3)
    loaded, loaded_config, payload = load_checkpoint(tmp_path / "c.pt")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x))
    assert loaded_config.fc == "16x8" and payload["epoch"] == 3

    assert payload["classes"] == MIKELS8.to_dict()  # the whole class set, as plain values
    with pytest.raises(CheckpointError, match=r"^checkpoint .*c\.pt was trained on 8 classes \(amusement, anger, "
                       r".*sadness\); dataset six/ has 6 classes \(anger, disgust, fear, joy, sadness, surprise\)$"):
        load_checkpoint(tmp_path / "c.pt", dataset_classes=EKMAN6, dataset="six/")

    payload["classes"] = ["happy", "sad"]  # a class set its head does not have
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"its class set \(happy, sad\) is not its model's \(amusement, "):
        load_checkpoint(tmp_path / "other.pt")

    payload["classes"] = list(EMOTIONS)  # a checkpoint from before class sets: FI's
    payload["model"]["fc"] = "8"  # weights of a 16x8 head under an 8 head
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="architecture does not match"):
        load_checkpoint(tmp_path / "mismatch.pt")

    torch.save(model.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not an EmoLens checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_imagenet_weights_read_from_torch_cache(tmp_path, monkeypatch):
    """A VGG19 state dict placed in the torch cache is used without any network."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    def no_network(*args, **kwargs):
        raise AssertionError("network used although the file is cached")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    reference = build_model(ModelConfig(pretrained=False))
    plain = torchvision_vgg19_state(reference)
    path = tmp_path / "checkpoints" / os.path.basename(BACKBONES["vgg19"].weights.url)
    path.parent.mkdir()
    torch.save(plain, path)
    model = build_model(ModelConfig(pretrained=True))
    assert torch.equal(model.features[0].weight, plain["features.0.weight"])


def torchvision_vgg19_state(model):
    state = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    for index, shape in ((0, (4096, 25088)), (3, (4096, 4096)), (6, (1000, 4096))):
        state[f"classifier.{index}.weight"] = torch.zeros(shape)
        state[f"classifier.{index}.bias"] = torch.zeros(shape[0])
    return state


def test_offline_without_weights_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        build_model(ModelConfig(pretrained=True))
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth") in message and "--no-pretrained" in message
