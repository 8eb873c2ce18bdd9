"""VGG classifiers with the paper's head, ImageNet weights, and self-describing checkpoints."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import VGG, VGG19_Weights
from torchvision.models.vgg import cfgs as VGG_CONFIGS
from torchvision.models.vgg import make_layers

from emotion_core.fileio import atomic_path
from emotion_core.labels import EMOTIONS, ClassSet, class_set_from, describe_classes

CHECKPOINT_FORMAT = "emolens-checkpoint/1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# A small stack of the same torchvision VGG class, for tests and the CPU demo.
SMALL_FEATURES: list[int | str] = [16, "M", 32, "M", 64, "M", 96, "M"]
ARCHITECTURES = ("vgg19", "vgg_small")


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights are neither cached nor downloadable."""


class CheckpointError(ValueError):
    """A file that is not a usable EmoLens checkpoint for these classes."""


@dataclass
class ModelConfig:
    arch: str = "vgg19"          # "vgg19" or "vgg_small"
    fc: str = "8"                # head sizes, e.g. "8", "8x8", "16x8"; the last is the class count
    dropout: float = 0.5
    input_size: int = 224
    pretrained: bool = True      # ImageNet weights (vgg19 only)
    batch_norm: bool = True      # batch norm after each conv (vgg_small only)
    classes: list[str] = field(default_factory=lambda: list(EMOTIONS))  # class ids in head order


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
    """Spatial size of the feature map after the last max-pool."""
    pools = VGG_CONFIGS["E"].count("M") if config.arch == "vgg19" else SMALL_FEATURES.count("M")
    return max(1, config.input_size // 2**pools)


def build_model(config: ModelConfig) -> VGG:
    """A torchvision VGG whose 3 FC layers are replaced by the paper's head."""
    if config.arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.arch!r}; valid: {', '.join(ARCHITECTURES)}")
    if config.arch == "vgg19":
        features, channels = make_layers(VGG_CONFIGS["E"]), 512
    else:
        features, channels = make_layers(SMALL_FEATURES, batch_norm=config.batch_norm), SMALL_FEATURES[-2]
    model = VGG(features, num_classes=1000 if config.arch == "vgg19" else 8, init_weights=True)
    if config.arch == "vgg19" and config.pretrained:
        model.load_state_dict(imagenet_state_dict())
    grid = feature_grid(config)
    # The head sees the flattened conv5 grid, like Keras' VGG19(include_top=False) + Flatten.
    model.avgpool = nn.AdaptiveAvgPool2d((grid, grid))
    model.classifier = build_head(channels * grid * grid, config.fc, config.dropout, len(config.classes))
    return model


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """VGG19 ImageNet weights via torchvision's weights API (torch cache first)."""
    weights = VGG19_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except Exception as err:  # URLError, socket and SSL errors all mean "not available"
        raise WeightsUnavailableError(
            f"VGG19 ImageNet weights are not in the torch cache and could not be downloaded "
            f"({type(err).__name__}: {err}); put {weights.url} at {cached} "
            f"(or set TORCH_HOME), or train without them with --no-pretrained") from None


def last_conv_layer(model: VGG) -> nn.Conv2d:
    """The last Conv2d of the feature stack."""
    return [m for m in model.features if isinstance(m, nn.Conv2d)][-1]


def cam_layer(model: VGG) -> nn.Module:
    """Where Grad-CAM looks: the last conv layer's rectified feature maps (the ReLU after
    conv5_4, after its batch norm where there is one), as in the Grad-CAM paper. The raw
    conv output before batch norm can flip sign per channel and zero out the map."""
    layers = list(model.features)
    position = layers.index(last_conv_layer(model))
    for module in layers[position + 1:]:
        if isinstance(module, nn.ReLU):
            return module
        if not isinstance(module, nn.BatchNorm2d):
            break
    return layers[position]


def conv_layer_names(model: VGG) -> dict[str, list[str]]:
    """Paper-style names for each conv layer ('conv5_4') -> module prefixes it owns.

    A conv's batch-norm (small VGG) belongs to it. Blocks are counted by max-pools.
    """
    names: dict[str, list[str]] = {}
    block, index, current = 1, 0, None
    for position, module in enumerate(model.features):
        if isinstance(module, nn.Conv2d):
            index += 1
            current = f"conv{block}_{index}"
            names[current] = [f"features.{position}"]
        elif isinstance(module, nn.BatchNorm2d) and current:
            names[current].append(f"features.{position}")
        elif isinstance(module, nn.MaxPool2d):
            block, index, current = block + 1, 0, None
    return names


def layer_groups(model: VGG) -> dict[str, list[str]]:
    """Named parameter groups for freezing, as data: 'head', 'convB_I', 'features', 'all'."""
    groups = {"head": ["classifier"], "features": ["features"], "all": [""]}
    groups.update(conv_layer_names(model))
    return groups


def top_conv_names(model: VGG, count: int) -> list[str]:
    """The `count` topmost conv layer names, top first (conv5_4, conv5_3, ...)."""
    return list(conv_layer_names(model))[::-1][:count]


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
        raise CheckpointError(f"{path}: not a loadable checkpoint ({_first_line(err)})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an EmoLens checkpoint (no '{CHECKPOINT_FORMAT}' header)")
    return payload


def checkpoint_classes(payload: dict[str, Any], path: str | os.PathLike = "checkpoint") -> ClassSet:
    """The class set a checkpoint was trained on. Checkpoints from before class sets were
    data hold a list of names (or none at all): those are FI's."""
    try:
        return class_set_from(payload.get("classes", payload.get("model", {}).get("classes")))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: unusable class set ({_first_line(err)})") from None


def check_same_classes(checkpoint: str | os.PathLike, trained: ClassSet,
                       dataset: str | os.PathLike, classes: ClassSet) -> None:
    """Refuse a dataset of another class set (or order) than the checkpoint's, in one line."""
    if not trained.same_classes(classes):
        raise CheckpointError(f"checkpoint {checkpoint} was trained on {describe_classes(trained)}; "
                              f"dataset {dataset} has {describe_classes(classes)}")


def load_checkpoint(path: str | os.PathLike, *, dataset_classes: ClassSet | None = None,
                    dataset: str | os.PathLike = "the dataset") -> tuple[VGG, ModelConfig, dict[str, Any]]:
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
        raise CheckpointError(f"{path}: architecture does not match its weights ({_first_line(err)})") from None
    model.eval()
    return model, config, payload


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel or torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
