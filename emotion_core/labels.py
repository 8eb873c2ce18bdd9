"""Class sets: which emotions a dataset (and every run on it) distinguishes, in model order.

Classes are data: a dataset dir declares its class set in classes.json, runs inherit it in
their checkpoint and metrics, and everything else reads it from there. A dataset dir without
classes.json is FI's (Mikels' eight), as every dataset was before class sets existed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

CLASSES_FILE = "classes.json"
POLARITIES = ("positive", "negative", "neutral")

# FI's order, used for FI, EmoSet and the LDL sets (which are mapped to it by name).
EMOTIONS: tuple[str, ...] = (
    "amusement", "anger", "awe", "contentment",
    "disgust", "excitement", "fear", "sadness",
)
NUM_CLASSES = len(EMOTIONS)
EMOTION_INDEX: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}
MIKELS_WHEEL = ("amusement", "contentment", "awe", "excitement", "fear", "sadness", "disgust", "anger")
MIKELS_POSITIVE = ("amusement", "awe", "contentment", "excitement")


@dataclass(frozen=True)
class ClassSet:
    """The classes in model output order, with optional display names, polarity and wheel.

    names: lower-case ids ('anger'); display: names shown to people (default: capitalised id);
    polarity: id -> positive/negative/neutral; wheel: a circular order of all ids (Mikels' wheel),
    used by emotion-distance metrics and views. kind names the family ('mikels8', 'emotion6')."""
    names: tuple[str, ...]
    display: tuple[str, ...] = ()
    polarity: dict[str, str] = field(default_factory=dict)
    wheel: tuple[str, ...] = ()
    kind: str = "custom"

    def __post_init__(self) -> None:
        names = tuple(str(n).strip().lower() for n in self.names)
        object.__setattr__(self, "names", names)
        if len(names) < 2:
            raise ValueError(f"a class set needs at least 2 classes, got {len(names)}")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate class name {duplicates[0]!r} in the class set")
        if any(not n for n in names):
            raise ValueError("a class name cannot be empty")
        display = tuple(self.display) or tuple(n.capitalize() for n in names)
        if len(display) != len(names):
            raise ValueError(f"{len(display)} display names for {len(names)} classes")
        object.__setattr__(self, "display", display)
        unknown = sorted(set(self.polarity) - set(names)) or sorted(set(self.wheel) - set(names))
        if unknown:
            raise ValueError(f"unknown class {unknown[0]!r} in polarity or wheel; classes: {', '.join(names)}")
        bad = sorted(set(self.polarity.values()) - set(POLARITIES))
        if bad:
            raise ValueError(f"unknown polarity {bad[0]!r}; valid: {', '.join(POLARITIES)}")
        if self.wheel and sorted(self.wheel) != sorted(names):
            raise ValueError("the wheel order must list every class once")

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    @property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @property
    def is_mikels(self) -> bool:
        """Mikels' eight: the views and metrics built on his wheel apply."""
        return set(self.names) == set(EMOTIONS)

    def display_name(self, name: str) -> str:
        return self.display[self.index[name]] if name in self.names else str(name).capitalize()

    def parse(self, name: str) -> str:
        """A user-given class name ('Anger ', 'ANGER', or a display name) as its id, or raise."""
        key = str(name).strip().lower()
        by_display = {d.strip().lower(): n for n, d in zip(self.names, self.display)}
        if key in self.index:
            return key
        if key in by_display:
            return by_display[key]
        raise ValueError(f"unknown emotion {name!r}; valid: {', '.join(self.names)}")

    def to_dict(self) -> dict:
        return {"names": list(self.names), "display": list(self.display), "polarity": dict(self.polarity),
                "wheel": list(self.wheel), "kind": self.kind}

    @classmethod
    def from_dict(cls, data: dict) -> "ClassSet":
        if not isinstance(data, dict) or "names" not in data:
            raise ValueError("a class set needs a 'names' list")
        return cls(names=tuple(data["names"]), display=tuple(data.get("display") or ()),
                   polarity=dict(data.get("polarity") or {}), wheel=tuple(data.get("wheel") or ()),
                   kind=str(data.get("kind") or "custom"))

    def same_classes(self, other: "ClassSet") -> bool:
        """Same ids in the same order: a model of one fits data of the other."""
        return self.names == other.names


MIKELS8 = ClassSet(EMOTIONS, polarity={n: "positive" if n in MIKELS_POSITIVE else "negative" for n in EMOTIONS},
                   wheel=MIKELS_WHEEL, kind="mikels8")
FI_CLASSES = MIKELS8


def read_classes(dataset_dir: str | os.PathLike) -> ClassSet:
    """The dataset dir's class set (classes.json); FI's eight when the file is absent."""
    path = Path(dataset_dir) / CLASSES_FILE
    if not path.is_file():
        return FI_CLASSES
    try:
        return ClassSet.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from None


def class_set_from(value: object) -> ClassSet:
    """A class set as stored in a checkpoint or metrics.json: a to_dict() mapping, a bare list
    of names (older checkpoints: FI's eight when they are FI's names), or nothing (FI's)."""
    if value is None:
        return FI_CLASSES
    if isinstance(value, dict):
        return ClassSet.from_dict(value)
    if isinstance(value, (list, tuple)):
        names = tuple(str(n).strip().lower() for n in value)
        return FI_CLASSES if names == FI_CLASSES.names else ClassSet(names)
    raise ValueError(f"a class set must be a mapping or a list of names, not {type(value).__name__}")


def describe_classes(classes: ClassSet) -> str:
    """'8 classes (amusement, anger, ...)', for one-line messages."""
    return f"{len(classes)} classes ({', '.join(classes.names)})"


def run_classes(run_dir: str | os.PathLike) -> ClassSet:
    """The class set of a run: metrics.json's "classes", else its checkpoint's, else FI's
    (runs made before class sets existed). Reads the checkpoint (and imports torch) only
    when metrics.json does not say."""
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    if isinstance(metrics.get("classes"), dict):
        try:
            return ClassSet.from_dict(metrics["classes"])
        except (ValueError, TypeError) as err:
            raise ValueError(f"{metrics_path}: {err}") from None
    checkpoint = run_dir / "checkpoint.pt"
    if checkpoint.is_file():
        from emotion_core.model import checkpoint_classes, read_checkpoint  # torch: only when needed

        return checkpoint_classes(read_checkpoint(checkpoint), checkpoint)
    return FI_CLASSES


def display_name(emotion: str) -> str:
    """'anger' -> 'Anger'."""
    return emotion.capitalize()


def parse_emotion(name: str) -> str:
    """Normalise a user-given FI emotion name ('Anger ', 'ANGER') to its id, or raise."""
    return FI_CLASSES.parse(name)
