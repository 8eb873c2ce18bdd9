"""Every backbone at a small input size with random weights: build, staged unfreezing,
evaluation with Grad-CAM, the shared pass against captum on the whole model, checkpoints,
ImageNet weights offline."""
import copy
import os
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from captum.attr import LayerGradCam
from torch import nn

from emotion_core.backbones import BACKBONES, layer_groups, tokens_to_grid
from emotion_core.dataset import read_dataset, write_dataset
from emotion_core.evaluation import evaluate_frame
from emotion_core.gradcam import normalise_maps
from emotion_core.model import (ModelConfig, WeightsUnavailableError, build_model, cam_layer, load_checkpoint,
                                read_checkpoint, save_checkpoint)
from emotion_core.predict import Predictor
from tests.conftest import save_noise_image, write_demo_dataset
from training.schedule import load_schedule, paper_schedule
from training.train import _optimizer_for

ROOT = Path(__file__).resolve().parent.parent
ARCHS = ["vgg16", "resnet50", "convnext_tiny", "vit_b_16"]
# Small inputs with a CAM grid larger than 1x1 (a 1x1 map normalises to 0 or 1 and shows nothing);
# VGG looks before its last max-pool (input / 16), the others at input / 32 (ViT: / 16 patches).
SIZE = {"vgg16": 64, "resnet50": 64, "convnext_tiny": 64, "vit_b_16": 48}
CAM_HW = {"vgg16": (4, 4), "resnet50": (2, 2), "convnext_tiny": (2, 2), "vit_b_16": (3, 3)}
# What the paper's schedule trains, stage by stage, as torchvision parameter-name prefixes
# written out by hand (not derived from the code under test).
HEAD = {"vgg16": ["classifier"], "resnet50": ["fc"], "convnext_tiny": ["classifier"],
        "vit_b_16": ["encoder.ln", "heads"]}
UNITS = {
    "vgg16": [("conv5_3", "features.28"), ("conv5_2", "features.26"), ("conv5_1", "features.24"),
              ("conv4_3", "features.21")],
    "resnet50": [("layer4.2", "layer4.2"), ("layer4.1", "layer4.1"), ("layer4.0", "layer4.0"),
                 ("layer3.5", "layer3.5")],
    "convnext_tiny": [("features.7.2", "features.7.2"), ("features.7.1", "features.7.1"),
                      ("features.7.0", "features.7.0"), ("features.6", "features.6")],
    "vit_b_16": [(f"encoder.layers.{i}", f"encoder.layers.encoder_layer_{i}") for i in (11, 10, 9, 8)],
}


@pytest.fixture(scope="module", params=ARCHS)
def built(request) -> tuple[str, nn.Module]:
    """One model per backbone for the module (ViT-B/16 is 86M parameters): paper head 16x8."""
    torch.manual_seed(0)
    arch = request.param
    config = ModelConfig(arch=arch, fc="16x8", input_size=SIZE[arch], pretrained=False)
    return arch, build_model(config).eval()


def config_of(arch: str, **changes) -> ModelConfig:
    return ModelConfig(**{"arch": arch, "fc": "16x8", "input_size": SIZE[arch], "pretrained": False, **changes})


def images_for(arch: str, count: int = 3) -> torch.Tensor:
    return torch.randn(count, 3, SIZE[arch], SIZE[arch], generator=torch.Generator().manual_seed(1))


# ---- build -----------------------------------------------------------------------------

def test_paper_head_sizes(built):
    arch, model = built
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)][-2:]
    assert [m.out_features for m in linears] == [16, 8]
    pooled = {"vgg16": 512 * 2 * 2, "resnet50": 2048, "convnext_tiny": 768, "vit_b_16": 768}
    assert linears[0].in_features == pooled[arch]
    with torch.no_grad():
        assert model(images_for(arch, 2)).shape == (2, 8)


@pytest.mark.parametrize("arch", ARCHS)
def test_linear_head_is_torchvisions_own(arch):
    """A linear head has torchvision's parameter names and shapes: a state dict fine-tuned with
    torchvision (last layer resized to the classes) loads as it is."""
    model = build_model(config_of(arch, head="linear", fc="8"))
    extra = {"image_size": SIZE[arch]} if arch == "vit_b_16" else {}
    reference = getattr(torchvision.models, arch)(weights=None, num_classes=8, **extra)
    assert {k: v.shape for k, v in model.state_dict().items()} == \
           {k: v.shape for k, v in reference.state_dict().items()}
    model.load_state_dict(reference.state_dict())


@pytest.mark.parametrize("config, message", [
    (dict(arch="resnet50", head="linear", fc="16x8"), "the linear head has no hidden layers"),
    (dict(arch="resnet50", head="mlp"), "unknown head 'mlp'; valid: paper, linear"),
    (dict(arch="vit_b_16", input_size=40), "divisible by its 16-pixel patches"),
    (dict(arch="resnet18"), "unknown architecture 'resnet18'; valid: vgg19, vgg16, resnet50, convnext_tiny, vit_b_16"),
])
def test_bad_model_configs_are_refused_in_one_line(config, message):
    with pytest.raises(ValueError, match=message):
        build_model(ModelConfig(**{"fc": "8", "input_size": 64, "pretrained": False, **config}))


# ---- staged unfreezing -------------------------------------------------------------------

def test_each_paper_stage_trains_exactly_its_parameters(built):
    arch, model = built
    stages = paper_schedule(model, epochs=1)
    assert [s.name for s in stages] == ["head", *(name for name, _ in UNITS[arch]), "all"]
    prefixes = [HEAD[arch]] + [HEAD[arch] + [p for _, p in UNITS[arch][:k]] for k in range(1, 5)] + [[""]]
    images, labels = images_for(arch, 4), torch.tensor([0, 3, 5, 7])
    for stage, owned in zip(stages, prefixes):
        expected = {n for n, _ in model.named_parameters() if any(p == "" or n.startswith(p + ".") for p in owned)}
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        optimizer = _optimizer_for(model, stage)
        # eval mode: no dropout or stochastic depth, so every trainable tensor gets a gradient
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
        assert changed == expected, (stage.name, sorted(changed ^ expected)[:5])
        assert {n for n, p in model.named_parameters() if p.requires_grad} == expected
    model.zero_grad(set_to_none=True)


def test_shipped_schedule_file_matches_the_code(built):
    arch, model = built
    assert load_schedule(ROOT / "assets" / f"schedule_{arch}.yaml") == paper_schedule(model, epochs=3)


def test_named_groups_users_know():
    convnext = build_model(config_of("convnext_tiny"))
    groups = layer_groups(convnext)
    assert groups["stages.3"] == ["features.6", "features.7"] and groups["stages.0"] == ["features.1"]
    assert groups["features.7.2"] == ["features.7.2"]
    resnet = layer_groups(build_model(config_of("resnet50")))
    assert resnet["layer4"] == ["layer4"] and "layer3.5" in resnet and "layer3.6" not in resnet


# ---- evaluation and Grad-CAM ------------------------------------------------------------

class _GridTap(nn.Module):
    """Wraps the ViT's last ln_1 in the full model: the same output, with its patch tokens
    passing through `grid` as (N, C, h, w) so that captum's LayerGradCam can look at them."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm, self.grid = norm, nn.Identity()

    def forward(self, tokens):
        normed = self.norm(tokens)
        grid = self.grid(tokens_to_grid(normed[:, 1:]))
        return torch.cat([normed[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)


def test_vit_tokens_become_the_grid_conv_proj_made():
    """Independent of _GridTap (which uses tokens_to_grid itself): the patch tokens as torchvision's
    ViT makes them from conv_proj's (N, C, h, w) output go back to that exact grid, not its
    transpose (the image is random, so the grid and its transpose differ)."""
    model = build_model(config_of("vit_b_16")).eval()
    images = images_for("vit_b_16", 2)
    with torch.no_grad():
        grid = model.conv_proj(images)                              # (N, C, 3, 3)
        tokens = grid.flatten(2).transpose(1, 2)                    # (N, 9, C), row-major patches
        torch.testing.assert_close(model._process_input(images), tokens, rtol=0, atol=0)  # the model's order
    assert grid.shape[2:] == (3, 3) and not torch.equal(grid, grid.transpose(2, 3))
    assert torch.equal(tokens_to_grid(tokens), grid)
    top_right = tokens[:, 2]                                        # row 0, column 2
    assert torch.equal(tokens_to_grid(tokens)[:, :, 0, 2], top_right)


def captum_on_full_model(arch: str, model: nn.Module) -> tuple[nn.Module, LayerGradCam]:
    if arch != "vit_b_16":
        return model, LayerGradCam(model, cam_layer(model))
    full = copy.deepcopy(model)
    block = full.encoder.layers[-1]
    block.ln_1 = _GridTap(block.ln_1)
    return full, LayerGradCam(full, block.ln_1.grid)


def test_shared_pass_equals_captum_on_the_whole_model(built):
    arch, model = built
    images, labels = images_for(arch), torch.tensor([1, 4, 7])
    predictor = Predictor(model, SIZE[arch])
    result = predictor.evaluate_batch(images, labels)
    full, reference = captum_on_full_model(arch, model)
    activations = predictor.gradcam.activations(images)
    for column, targets in ((0, result.predicted), (1, labels)):
        expected = reference.attribute(images, target=targets, relu_attributions=True).detach()[:, 0]
        assert expected.shape[1:] == CAM_HW[arch] and expected.abs().sum() > 0
        raw = predictor.gradcam.maps(activations, targets)
        torch.testing.assert_close(raw, expected, atol=1e-5 * float(expected.abs().max()), rtol=1e-3)
        np.testing.assert_allclose(result.cams[:, column], normalise_maps(expected).numpy(), atol=2e-3)
    with torch.no_grad():
        np.testing.assert_allclose(result.probabilities, torch.softmax(full(images), 1).numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def three_images(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("images")
    rows = [{"image_id": str(i), "path": save_noise_image(folder / f"{i}.png", (70, 60), seed=i).name,
             "label": label, "agree": 3, "disagree": 1, "split": "test"}
            for i, label in enumerate(("awe", "fear", "sadness"))]
    write_dataset(folder, pd.DataFrame(rows), {})
    return read_dataset(folder)[0]


def test_evaluation_writes_cams_at_the_cam_layer_resolution(built, three_images):
    arch, model = built
    predictor = Predictor(model, SIZE[arch])
    result = evaluate_frame(predictor, three_images, batch_size=2)
    assert result.cams.shape == (3, 2, *CAM_HW[arch]) and result.cams.dtype == np.float16
    assert predictor.cam_shape() == CAM_HW[arch]
    assert result.cams.max() <= 1.0 and (result.cams.reshape(3, 2, -1).max(axis=2) == 1.0).any()
    assert len(result.table) == 3


# ---- checkpoints -------------------------------------------------------------------------

def test_checkpoint_round_trip(built, tmp_path):
    arch, model = built
    config = config_of(arch)
    save_checkpoint(tmp_path / "c.pt", model, config)
    loaded, loaded_config, _ = load_checkpoint(tmp_path / "c.pt")
    assert loaded_config == config
    images = images_for(arch, 2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))


def test_linear_head_checkpoint_round_trip(tmp_path):
    config = config_of("resnet50", head="linear", fc="8")
    model = build_model(config).eval()
    save_checkpoint(tmp_path / "c.pt", model, config)
    loaded, loaded_config, _ = load_checkpoint(tmp_path / "c.pt")
    assert loaded_config.head == "linear" and isinstance(loaded.fc, nn.Linear)


def test_a_vgg_checkpoint_from_before_heads_loads(tmp_path):
    config = ModelConfig(arch="vgg_small", fc="16x8", input_size=32)
    model = build_model(config).eval()
    save_checkpoint(tmp_path / "c.pt", model, config)
    payload = read_checkpoint(tmp_path / "c.pt")
    del payload["model"]["head"]  # as written before the head option existed
    torch.save(payload, tmp_path / "old.pt")
    loaded, loaded_config, _ = load_checkpoint(tmp_path / "old.pt")
    assert loaded_config.head == "paper"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))


# ---- ImageNet weights --------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_offline_without_weights_names_the_file_and_folder(arch, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        build_model(ModelConfig(arch=arch, input_size=64 if arch != "vit_b_16" else 224))
    message = str(info.value)
    cached = tmp_path / "checkpoints" / os.path.basename(BACKBONES[arch].weights.url)
    assert "\n" not in message and str(cached) in message and "--no-pretrained" in message
    assert message.startswith(f"{BACKBONES[arch].title} ImageNet weights are not in the torch cache")


def test_cached_resnet_weights_are_used_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError("network used although the file is cached")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    imagenet = torchvision.models.resnet50(weights=None).state_dict()  # stands in for the real file
    path = tmp_path / "checkpoints" / os.path.basename(BACKBONES["resnet50"].weights.url)
    path.parent.mkdir()
    torch.save(imagenet, path)
    model = build_model(ModelConfig(arch="resnet50", input_size=64, head="linear"))
    assert torch.equal(model.layer4[2].conv3.weight, imagenet["layer4.2.conv3.weight"])
    assert model.fc.out_features == 8


def test_vit_weights_fit_another_input_size(monkeypatch):
    """ImageNet ViT weights are for 224x224: their position embeddings are interpolated."""
    imagenet = torchvision.models.vit_b_16(weights=None).state_dict()
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", lambda *a, **k: imagenet)
    model = build_model(ModelConfig(arch="vit_b_16", input_size=48))
    assert model.encoder.pos_embedding.shape == (1, 1 + 3 * 3, 768)
    assert torch.equal(model.conv_proj.weight, imagenet["conv_proj.weight"])
    assert torch.equal(model.encoder.pos_embedding[0, 0], imagenet["encoder.pos_embedding"][0, 0])  # class token's


# ---- the search: the backbone as a grid dimension ----------------------------------------

def test_search_crosses_configs_with_backbones(tmp_path):
    from training.search import cross_backbones, search
    from training.train import TrainConfig

    write_demo_dataset(tmp_path, 3, size=64, seed=2, split=(0.7, 0.3, 0.0))
    grid = [{"fc": "8", "lr": 1e-3, "dropout": 0.5}, {"fc": "16x8", "lr": 1e-3, "dropout": 0.5},
            {"fc": "8", "lr": 1e-3, "dropout": 0.5, "arch": "vgg_small", "head": "paper"}]
    configs = cross_backbones(grid, ["resnet50", "convnext_tiny"], "linear", 8)
    # linear: no hidden layers, no dropout (two configs become one); the config naming its own
    # backbone and head keeps them and is trained once
    assert [(c["arch"], c["head"], c["fc"], c["dropout"]) for c in configs] == [
        ("resnet50", "linear", "8", 0.0), ("vgg_small", "paper", "8", 0.5), ("convnext_tiny", "linear", "8", 0.0)]
    configs = cross_backbones(grid[:1], ["vgg_small", "resnet50"], "paper", 8)
    base = TrainConfig(dataset=str(tmp_path), out="", arch="vgg_small", input_size=64, pretrained=False,
                       batch_size=8, workers=0, device="cpu", evaluate=False)
    table = search(base, configs, tmp_path / "search", epochs=1, schedule="paper")
    assert table["Backbone"].tolist() == ["vgg_small", "resnet50"] and table["Head"].tolist() == ["paper"] * 2
    run = tmp_path / "search" / "resnet50_fc8_lr0.001_do0.5"
    assert read_checkpoint(run / "checkpoint.pt")["model"]["arch"] == "resnet50"
    assert pd.read_csv(run / "history.csv")["stage"].tolist() == ["head", "layer4.2", "layer4.1", "layer4.0",
                                                                  "layer3.5", "all"]
    assert "| resnet50 | paper | 8 | 0.001 | 0.5 |" in (tmp_path / "search" / "results.md").read_text()
