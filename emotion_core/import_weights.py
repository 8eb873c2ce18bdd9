"""Models trained elsewhere: a torchvision-compatible state dict -> an EmoLens checkpoint.

The weights are checked tensor by tensor against the model EmoLens builds for the same
architecture, head and class set, so that a wrong head size or backbone is one clear line
here, not a failure deep inside evaluation.
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from emotion_core.fileio import first_line
from emotion_core.labels import ClassSet, describe_classes
from emotion_core.model import CheckpointError, ModelConfig, build_model

WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
NESTED_KEYS = ("state_dict", "model", "model_state_dict")  # training scripts' {"model": state_dict, ...}
SAFETENSORS_INSTALL = "pip install safetensors"
# Plain-data classes a training checkpoint may pickle besides its tensors, allowed under
# weights_only=True: torchvision's references/classification/train.py saves its argparse.Namespace
# as "args" next to "model", "optimizer", "lr_scheduler" and "epoch".
SAFE_CHECKPOINT_GLOBALS = [argparse.Namespace]
UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


class WeightsError(CheckpointError):
    """A weights file that does not fit the model asked for; one line for the user."""


def model_config(arch: str, classes: ClassSet, *, fc: str | None = None, head: str | None = None,
                 input_size: int = 224) -> ModelConfig:
    """The config of the model the weights must fit. head=None: torchvision's own head ("linear"),
    as a state dict fine-tuned with torchvision has it."""
    return ModelConfig(arch=arch, fc=fc or str(len(classes)), pretrained=False, input_size=input_size,
                       classes=list(classes.names), head=head or "linear")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from .pth/.pt (torch.load with weights_only=True) or .safetensors, with the
    'module.' / '_orig_mod.' prefixes of wrapped models removed."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    loaded = _read_safetensors(path) if path.suffix.lower() == ".safetensors" else _read_torch(path)
    state = _unnest(loaded, path)
    return {_strip_prefixes(key): value for key, value in state.items()}


def _read_torch(path: Path) -> Any:
    try:
        with torch.serialization.safe_globals(SAFE_CHECKPOINT_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickled code (a whole nn.Module, a custom class), a truncated or foreign file
        raise WeightsError(f"{path}: not loadable with weights_only=True ({_load_failure(err)})") from None


def _load_failure(err: BaseException) -> str:
    """What torch.load refused, in one line with a way out."""
    unsupported = UNSUPPORTED_GLOBAL.search(str(err))
    if unsupported is None:
        return first_line(err)
    return (f"it pickles {unsupported.group(1)}, which is not a tensor or plain data; save the weights alone, "
            f"e.g. torch.save(model.state_dict(), FILE) for a whole model, or the state dict under a "
            f"training checkpoint's 'model' key")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise WeightsError(f"{path}: reading .safetensors needs the safetensors package "
                           f"({SAFETENSORS_INSTALL})") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as err:
        raise WeightsError(f"{path}: not a readable .safetensors file ({first_line(err)})") from None


def _unnest(loaded: Any, path: Path) -> Mapping[str, Any]:
    """The tensor mapping itself, or the one under 'state_dict' / 'model' of a training checkpoint."""
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"{path}: holds a {type(loaded).__name__}, not a state dict")
    if loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return loaded
    for key in NESTED_KEYS:
        inner = loaded.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    if not loaded:
        raise WeightsError(f"{path}: an empty state dict")
    other = next(k for k, v in loaded.items() if not isinstance(v, torch.Tensor))
    raise WeightsError(f"{path}: not a state dict of tensors (entry {other!r} is a {type(loaded[other]).__name__})")


def _strip_prefixes(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], classes: ClassSet,
                     source: str | os.PathLike = "the weights", head: str | None = None) -> None:
    """Raise WeightsError naming the first key whose shape differs (with both shapes), or the
    missing and unexpected keys. A batch norm's num_batches_tracked may be missing (PyTorch fills it)."""
    expected = model.state_dict()
    for key, tensor in state.items():
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape):
            count = sum(1 for k, t in state.items() if k in expected and tuple(t.shape) != tuple(expected[k].shape))
            hint = _head_hint(expected, key, tensor, classes)
            raise WeightsError(f"{source}: {key} has shape {_shape(tensor)} in the file but "
                               f"{_shape(expected[key])} in the model ({count} tensor(s) differ){hint}")
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [f"{len(missing)} missing (first {missing[0]!r})"] if missing else []
        parts += [f"{len(unexpected)} unexpected (first {unexpected[0]!r})"] if unexpected else []
        raise WeightsError(f"{source}: keys do not match the model: {'; '.join(parts)}; "
                           f"{_head_advice(missing, unexpected, head)}")


def _head_advice(missing: list[str], unexpected: list[str], head: str | None) -> str:
    """When only the head's keys differ, which --head the file's head looks like."""
    roots = {key.split(".")[0] for key in missing + unexpected}
    if len(roots) == 1 and head in ("paper", "linear"):
        other = "linear" if head == "paper" else "paper"
        return (f"only the head ({roots.pop()}) differs: the file's is not the {head} head; try --head {other} "
                f"(and --fc with the paper head's sizes)")
    return "is --arch / --head / --fc the architecture the weights were trained with?"


def _head_hint(expected: Mapping[str, torch.Tensor], key: str, tensor: torch.Tensor, classes: ClassSet) -> str:
    """Where the mismatch is the output layer: say that it is about the class count."""
    output_keys = [k for k in expected if k.endswith(".weight") or k.endswith(".bias")][-2:]
    if key in output_keys and expected[key].shape[0] == len(classes):
        return (f"; the model's output layer has one row per class of the dataset, "
                f"{describe_classes(classes)}, the file's has {tensor.shape[0]}")
    return ""


def load_weights(path: str | os.PathLike, config: ModelConfig, classes: ClassSet) -> nn.Module:
    """The EmoLens model of `config` holding the file's weights, checked first."""
    model = build_model(config)
    state = read_state_dict(path)
    check_state_dict(model, state, classes, path, config.head)
    model.load_state_dict(state, strict=False)  # strict checks done above; num_batches_tracked may be absent
    return model.eval()


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in tensor.shape) + ")"


