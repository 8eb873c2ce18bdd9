"""Classifiers on torchvision backbones with the paper's head or a linear head, ImageNet
weights, and self-describing checkpoints. The backbones themselves are described in
emotion_core.backbones."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import VGG
from torchvision.models.vgg import cfgs as VGG_CONFIGS
from torchvision.models.vision_transformer import interpolate_embeddings

from emotion_core.backbones import (BACKBONES, SMALL_FEATURES, get_backbone, head_in_features, layer_groups,
                                    set_module, top_blocks, vgg_conv_names)
from emotion_core.backbones import cam_layer, last_conv_layer  # noqa: F401  (re-exported: callers import them here)
from emotion_core.fileio import atomic_path, first_line
from emotion_core.labels import EMOTIONS, ClassSet, class_set_from, describe_classes

CHECKPOINT_FORMAT = "emolens-checkpoint/1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHITECTURES = tuple(BACKBONES)  # vgg19, vgg16, resnet50, convnext_tiny, vit_b_16, vgg_small
HEADS = ("paper", "linear")
VGG_STACKS = {"vgg19": VGG_CONFIGS["E"], "vgg16": VGG_CONFIGS["D"], "vgg_small": SMALL_FEATURES}


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights are neither cached nor downloadable."""


class CheckpointError(ValueError):
    """A file that is not a usable EmoLens checkpoint for these classes."""


@dataclass
class ModelConfig:
    arch: str = "vgg19"          # one of ARCHITECTURES (see emotion_core.backbones)
    fc: str = "8"                # head sizes, e.g. "8", "8x8", "16x8"; the last is the class count
    dropout: float = 0.5         # before each FC layer of the paper's head (the linear head has none)
    input_size: int = 224
    pretrained: bool = True      # ImageNet weights (every arch but vgg_small)
    batch_norm: bool = True      # batch norm after each conv (vgg_small only)
    classes: list[str] = field(default_factory=lambda: list(EMOTIONS))  # class ids in head order
    # "paper": dropout + FC layers of `fc` sizes (on VGG, on the flattened conv grid as in the
    # paper; elsewhere on the pooled features). "linear": torchvision's own head with its last
    # Linear sized to the classes (state dicts fine-tuned with torchvision load as they are).
    # Checkpoints from before this field are paper-head VGGs: the default keeps them loading.
    head: str = "paper"


def parse_fc_spec(spec: str, num_classes: int) -> list[int]:
    """'16x8' -> [16, 8]; the last size must equal the number of classes."""
    try:
        sizes = [int(part) for part in str(spec).lower().split("x")]
    except ValueError:
        raise ValueError(f"FC spec {spec!r} must look like '8', '8x8' or '16x8'") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"FC spec {spec!r}: sizes must be positive integers")
    if sizes[-1] != num_classes:
        raise ValueError(f"FC spec {spec!r} must end in {num_classes} (the number of classes)")
    return sizes


def build_head(in_features: int, spec: str, dropout: float, num_classes: int) -> nn.Sequential:
    """The paper's head: dropout, then FC layers of the given sizes with ReLU between."""
    layers: list[nn.Module] = []
    width = in_features
    for i, size in enumerate(parse_fc_spec(spec, num_classes)):
        if i:
            layers.append(nn.ReLU(inplace=True))
        layers += [nn.Dropout(dropout), nn.Linear(width, size)]
        width = size
    return nn.Sequential(*layers)


def feature_grid(config: ModelConfig) -> int:
    """Spatial size of a VGG's feature map after the last max-pool."""
    return max(1, config.input_size // 2 ** VGG_STACKS[config.arch].count("M"))


def build_model(config: ModelConfig) -> nn.Module:
    """The torchvision backbone with ImageNet weights (when asked) and the chosen head."""
    backbone = get_backbone(config.arch)
    if config.head not in HEADS:
        raise ValueError(f"unknown head {config.head!r}; valid: {', '.join(HEADS)}")
    sizes = parse_fc_spec(config.fc, len(config.classes))
    if config.head == "linear" and len(sizes) > 1:
        raise ValueError(f"the linear head has no hidden layers: FC spec {config.fc!r} needs --head paper")
    if config.head == "linear" and config.arch == "vgg_small":
        raise ValueError("vgg_small has only the paper head (torchvision's VGG classifier expects 512 channels)")
    # Weights first: offline, the one-line error comes before minutes of building.
    state = imagenet_state_dict(config.arch, config.input_size) if config.pretrained and backbone.weights else None
    model = backbone.build(config.input_size, config.batch_norm)
    if state is not None:
        model.load_state_dict(state)
    if config.head == "paper" and isinstance(model, VGG):
        grid = feature_grid(config)
        # The head sees the flattened conv5 grid, like Keras' VGG19(include_top=False) + Flatten.
        model.avgpool = nn.AdaptiveAvgPool2d((grid, grid))
        channels = [m for m in model.features if isinstance(m, nn.Conv2d)][-1].out_channels
        model.classifier = build_head(channels * grid * grid, config.fc, config.dropout, len(config.classes))
    else:
        width = head_in_features(model, backbone.linear_slot)
        head = (nn.Linear(width, len(config.classes)) if config.head == "linear"
                else build_head(width, config.fc, config.dropout, len(config.classes)))
        set_module(model, backbone.linear_slot, head)
    return model


def imagenet_state_dict(arch: str = "vgg19", input_size: int = 224) -> dict[str, torch.Tensor]:
    """A backbone's ImageNet weights via torchvision's weights API (torch cache first); ViT's
    position embeddings interpolated to input_size as torchvision's own helper does."""
    backbone = get_backbone(arch)
    weights = backbone.weights
    if weights is None:
        raise ValueError(f"{arch} has no ImageNet weights; train it with --no-pretrained")
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    try:
        state = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except Exception as err:  # URLError, socket and SSL errors all mean "not available"
        raise WeightsUnavailableError(
            f"{backbone.title} ImageNet weights are not in the torch cache and could not be downloaded "
            f"({type(err).__name__}: {first_line(err)}); put {weights.url} at {cached} "
            f"(or set TORCH_HOME), or train without them with --no-pretrained") from None
    if arch == "vit_b_16" and input_size != weights.meta["min_size"][0]:
        state = interpolate_embeddings(input_size, 16, state)
    return state


def conv_layer_names(model: VGG) -> dict[str, list[str]]:
    """A VGG's paper-style conv names ('conv5_4') -> module prefixes (see backbones)."""
    return vgg_conv_names(model)


def top_conv_names(model: nn.Module, count: int) -> list[str]:
    """The `count` topmost units (VGG: conv5_4, conv5_3, ...), top first."""
    return top_blocks(model, count)


def parameters_in_groups(model: nn.Module, groups: list[str]) -> list[tuple[str, nn.Parameter]]:
    """Named parameters that belong to any of the named groups (unknown names raise)."""
    available = layer_groups(model)
    unknown = [g for g in groups if g not in available]
    if unknown:
        raise ValueError(f"unknown layer group {unknown[0]!r}; valid: {', '.join(available)}")
    prefixes = [p for g in groups for p in available[g]]
    return [(name, param) for name, param in model.named_parameters()
            if any(_under(name, prefix) for prefix in prefixes)]


def _under(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")


# ---- checkpoints -------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, model: nn.Module, config: ModelConfig,
                    classes: ClassSet | None = None, **extra: Any) -> None:
    """Write a checkpoint that rebuilds its own model and names its class set (display
    names, polarity, wheel: the run's pages read them); `extra` holds plain values only.
    classes=None: the set of config.classes' names (FI's eight for FI's names)."""
    classes = class_set_from(config.classes) if classes is None else classes
    if list(classes.names) != list(config.classes):
        raise ValueError(f"the class set ({', '.join(classes.names)}) is not the model's "
                         f"({', '.join(config.classes)})")
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": asdict(config),
        "classes": classes.to_dict(),  # plain dict of lists and strings: loads with weights_only=True
        "input_size": config.input_size,
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "state_dict": state,
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's dict, loaded without running pickled code."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as err:
        raise CheckpointError(f"{path}: not a loadable checkpoint ({first_line(err)})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an EmoLens checkpoint (no '{CHECKPOINT_FORMAT}' header)")
    return payload


def checkpoint_classes(payload: dict[str, Any], path: str | os.PathLike = "checkpoint") -> ClassSet:
    """The class set a checkpoint was trained on. Checkpoints from before class sets were
    data hold a list of names (or none at all): those are FI's."""
    try:
        return class_set_from(payload.get("classes", payload.get("model", {}).get("classes")))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: unusable class set ({first_line(err)})") from None


def check_same_classes(checkpoint: str | os.PathLike, trained: ClassSet,
                       dataset: str | os.PathLike, classes: ClassSet) -> None:
    """Refuse a dataset of another class set (or order) than the checkpoint's, in one line."""
    if not trained.same_classes(classes):
        raise CheckpointError(f"checkpoint {checkpoint} was trained on {describe_classes(trained)}; "
                              f"dataset {dataset} has {describe_classes(classes)}")


def load_checkpoint(path: str | os.PathLike, *, dataset_classes: ClassSet | None = None,
                    dataset: str | os.PathLike = "the dataset") -> tuple[nn.Module, ModelConfig, dict[str, Any]]:
    """Rebuild the model from its checkpoint; refuse a mismatched architecture and, when
    dataset_classes is given, a dataset of another class set (named `dataset` in the error)."""
    payload = read_checkpoint(path)
    classes = checkpoint_classes(payload, path)
    if dataset_classes is not None:
        check_same_classes(path, classes, dataset, dataset_classes)
    model_args = dict(payload["model"], pretrained=False)
    if list(model_args.get("classes", classes.names)) != list(classes.names):
        raise CheckpointError(f"{path}: its class set ({', '.join(classes.names)}) is not its model's "
                              f"({', '.join(model_args['classes'])})")
    try:
        config = ModelConfig(**model_args)
        model = build_model(config)
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: architecture does not match its weights ({first_line(err)})") from None
    model.eval()
    return model, config, payload


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel or torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


