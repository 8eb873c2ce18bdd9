"""Training schedules as data: a list of stages, each naming the layer groups it trains.

Layer group names: 'head', 'features', 'all' for every backbone, plus each backbone's own
units (see emotion_core.backbones): VGG 'convB_I' (e.g. conv5_4); ResNet 'layer4', 'layer4.2';
ConvNeXt 'features.7', 'features.7.2', 'stages.3'; ViT 'encoder.layers.11', 'embeddings'.
assets/ holds the paper's schedule for each backbone (paper_schedule.yaml for vgg19,
schedule_<arch>.yaml for the others). A schedule file (YAML or JSON) is a list of stages:

  - {name: head, trainable: [head], lr: 1.0e-4, epochs: 3}
  - {name: conv5_4, trainable: [head, conv5_4], lr: 1.0e-5, epochs: 2, group_lrs: {head: 1.0e-5}}
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml
from torch import nn

from emotion_core.model import layer_groups, top_blocks


@dataclass
class Stage:
    name: str
    trainable: list[str]
    lr: float
    epochs: int
    group_lrs: dict[str, float] = field(default_factory=dict)  # per-group overrides of lr

    def lr_of(self, group: str) -> float:
        return float(self.group_lrs.get(group, self.lr))


PAPER_UNFROZEN_UNITS = 4  # the paper unfroze conv5_4..conv5_1 one at a time


def paper_schedule(model: nn.Module, epochs: int) -> list[Stage]:
    """The paper: head at 1e-4; the top 4 units unfrozen one at a time (1e-5, then 1e-6); all
    at 1e-6. Units are the backbone's top blocks (VGG convs, ResNet bottlenecks, ConvNeXt
    blocks, ViT encoder layers: emotion_core.backbones.top_blocks)."""
    stages = [Stage("head", ["head"], 1e-4, epochs)]
    unfrozen: list[str] = []
    for i, unit in enumerate(top_blocks(model, PAPER_UNFROZEN_UNITS)):
        unfrozen.append(unit)
        stages.append(Stage(unit, ["head", *unfrozen], 1e-5 if i == 0 else 1e-6, epochs))
    stages.append(Stage("all", ["all"], 1e-6, epochs))
    return stages


def single_stage(lr: float, epochs: int) -> list[Stage]:
    """Train everything at once (the CPU demo, from random weights)."""
    return [Stage("all", ["all"], lr, epochs)]


def load_schedule(path: str | Path) -> list[Stage]:
    """Read a YAML or JSON list of stages; a typo stops with the file, stage and key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"{path}: cannot read schedule ({err.strerror})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} "
                         f"({str(err).splitlines()[0]})") from None
    if isinstance(data, dict) and "stages" in data:
        data = data["stages"]
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: a schedule is a non-empty list of stages")
    return [_stage_from(entry, path, i + 1) for i, entry in enumerate(data)]


def _stage_from(entry: object, path: Path, number: int) -> Stage:
    where = f"{path.name} stage {number}"
    valid = [f.name for f in fields(Stage)]
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping with keys {', '.join(valid)}")
    unknown = [k for k in entry if k not in valid]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; valid: {', '.join(valid)}")
    missing = [k for k in ("trainable", "lr", "epochs") if k not in entry]
    if missing:
        raise ValueError(f"{where}: missing key {missing[0]!r}")
    trainable = entry["trainable"]
    if isinstance(trainable, str):
        trainable = [trainable]
    try:
        return Stage(name=str(entry.get("name", f"stage{number}")), trainable=[str(t) for t in trainable],
                     lr=float(entry["lr"]), epochs=int(entry["epochs"]),
                     group_lrs={str(k): float(v) for k, v in (entry.get("group_lrs") or {}).items()})
    except (TypeError, ValueError):
        raise ValueError(f"{where}: lr and group_lrs must be numbers, epochs a whole number") from None


def check_schedule(stages: list[Stage], model: nn.Module) -> None:
    """Every named layer group must exist in this model."""
    groups = layer_groups(model)
    for number, stage in enumerate(stages, start=1):
        for name in [*stage.trainable, *stage.group_lrs]:
            if name not in groups:
                raise ValueError(f"stage {number} ({stage.name}): unknown layer {name!r}; "
                                 f"valid: {', '.join(groups)}")
        if stage.epochs < 1 or stage.lr <= 0:
            raise ValueError(f"stage {number} ({stage.name}): epochs must be >= 1 and lr > 0")


def schedule_to_dicts(stages: list[Stage]) -> list[dict]:
    return [asdict(s) for s in stages]
