"""EmoSet-118K as released: official splits, Mikels' eight by name, per-image attributes.

  <root>/info.json                      {"emotion": {"label2idx": {"amusement": 0, ...}}, ...}
  <root>/train.json, val.json, test.json
  <root>/annotation/<emotion>/<emotion>_NNNNN.json
  <root>/image/<emotion>/<emotion>_NNNNN.jpg

A split file is a JSON list of entries in one of two shapes:
  [emotion, image_path, annotation_path]            (the released zip)
  [emotion, image_id, image_path, annotation_path]  (the official loader)
The annotation attributes become manifest columns attr_<name>: numbers as float64 (NaN when
missing), categories as stripped strings (NA when missing), objects as a list of strings.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from emotion_core.importers import (DataImportError, ImportReport, keep_loadable, load_json, parallel_map,
                                    read_json_list, read_text)
from emotion_core.labels import MIKELS8, ClassSet

# EmoSet's own label order (info.json); labels are mapped to MIKELS8 by name, never by index.
EMOSET_EMOTIONS = ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")
SPLIT_FILES = (("train.json", "train"), ("val.json", "dev"), ("test.json", "test"))
NUMBER_ATTRIBUTES = ("brightness", "colorfulness")
TEXT_ATTRIBUTES = ("scene", "facial_expression", "human_action")
LIST_ATTRIBUTES = ("object",)
ATTRIBUTE_COLUMNS = tuple(f"attr_{name}" for name in NUMBER_ATTRIBUTES + TEXT_ATTRIBUTES + LIST_ATTRIBUTES)


def import_emoset(root: str | os.PathLike, *,
                  workers: int | None = None) -> tuple[pd.DataFrame, ImportReport, ClassSet]:
    root = Path(root)
    if not root.is_dir():
        raise DataImportError(f"{root}: folder not found")
    report = ImportReport(source=f"emoset {root}", classes=MIKELS8)
    emotions = emoset_emotions(root)
    entries = read_split_entries(root, emotions)
    report.rows_read = len(entries)
    annotations = parallel_map(lambda entry: read_annotation(root, entry["annotation"]), entries,
                               total=len(entries), desc="reading annotations", unit="file", workers=workers)
    rows = [{"image_id": e["image_id"], "path": os.path.normpath(root.absolute() / e["image"]),
             "label": e["label"], "agree": pd.NA, "disagree": pd.NA, "split": e["split"], "source": ""}
            for e in entries]
    frame = pd.DataFrame(rows)
    missing_annotations = sum(a is None for a in annotations)
    attributes = attribute_columns([a or {} for a in annotations])
    manifest = keep_loadable(pd.concat([frame, attributes], axis=1), report, workers)
    report.details = {"annotations_missing": missing_annotations,
                      "attributes_present": {column: _present(manifest[column]) for column in ATTRIBUTE_COLUMNS}}
    return manifest, report, MIKELS8


def emoset_emotions(root: Path) -> tuple[str, ...]:
    """The emotion names info.json declares (EmoSet's eight when there is no info.json)."""
    path = root / "info.json"
    if not path.is_file():
        return EMOSET_EMOTIONS
    info = load_json(read_text(path, "info.json"), "info.json")
    names = ((info.get("emotion") or {}).get("label2idx") if isinstance(info, dict) else None)
    if not isinstance(names, dict) or not names:
        raise DataImportError("info.json: no emotion label2idx mapping (expected {\"emotion\": "
                              "{\"label2idx\": {\"amusement\": 0, ...}}})")
    unknown = sorted(str(name) for name in names if str(name).strip().lower() not in MIKELS8.names)
    if unknown:
        raise DataImportError(f"info.json: emotion {unknown[0]!r} is not one of Mikels' eight "
                              f"({', '.join(MIKELS8.names)})")
    return tuple(str(name).strip().lower() for name in names)


def read_split_entries(root: Path, emotions: tuple[str, ...]) -> list[dict]:
    """One dict per split entry (label, image_id, image, annotation, split); an image (path or
    id) listed twice, in one split or across splits, is refused: its split would be ambiguous."""
    present = [(name, split) for name, split in SPLIT_FILES if (root / name).is_file()]
    if not present:
        raise DataImportError(f"{root}: no split files ({', '.join(n for n, _ in SPLIT_FILES)})")
    entries, first_seen = [], {}
    for name, split in present:
        for line, raw in read_json_list(root / name, name):
            where = f"{name} line {line}"
            entry = _parse_entry(raw, emotions, where)
            for key in (("image", entry["image"]), ("image_id", entry["image_id"])):
                if key in first_seen:
                    raise DataImportError(f"{where}: {key[0]} {key[1]!r} is also listed on {first_seen[key]}")
                first_seen[key] = where
            entries.append({**entry, "split": split})
    return entries


def _parse_entry(raw, emotions: tuple[str, ...], where: str) -> dict:
    if not (isinstance(raw, list) and len(raw) in (3, 4) and all(isinstance(v, str) for v in raw)):
        shown = repr(raw) if len(repr(raw)) <= 80 else repr(raw)[:77] + "..."
        raise DataImportError(f"{where}: expected [emotion, image_path, annotation_path] or "
                              f"[emotion, image_id, image_path, annotation_path], got {shown}")
    emotion = raw[0].strip().lower()
    if emotion not in emotions:
        raise DataImportError(f"{where}: emotion {raw[0]!r} is not an EmoSet emotion; "
                              f"EmoSet has {', '.join(emotions)}")
    image, annotation = raw[-2].strip(), raw[-1].strip()
    image_id = raw[1].strip() if len(raw) == 4 else Path(image).stem
    return {"label": MIKELS8.parse(emotion), "image_id": image_id, "image": image, "annotation": annotation}


def read_annotation(root: Path, relative: str) -> dict | None:
    """The annotation's attributes (only those present), None when the file is missing."""
    path = root / relative
    if not path.is_file():
        return None
    data = load_json(read_text(path, relative), relative)
    if not isinstance(data, dict):
        raise DataImportError(f"{relative} line 1: expected a JSON object of attributes")
    attributes = {}
    for name in NUMBER_ATTRIBUTES:
        value = data.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)) or not _is_number(value):
                raise DataImportError(f"{relative}: {name} {value!r} is not a number")
            attributes[name] = float(value)
    for name in TEXT_ATTRIBUTES:
        value = data.get(name)
        if isinstance(value, (list, dict)):
            raise DataImportError(f"{relative}: {name} must be a single value, got {value!r}")
        if value is not None and str(value).strip():
            attributes[name] = str(value).strip()
    objects = data.get("object")
    if objects is not None:
        objects = [objects] if isinstance(objects, str) else objects
        if not isinstance(objects, list) or any(isinstance(o, (list, dict)) for o in objects):
            raise DataImportError(f"{relative}: object must be a list of names, got {data['object']!r}")
        attributes["object"] = [str(o).strip() for o in objects if o is not None and str(o).strip()]
    return attributes


def attribute_columns(annotations: list[dict]) -> pd.DataFrame:
    """attr_* columns, one row per annotation, with the dtypes the manifest contract names."""
    columns = {}
    for name in NUMBER_ATTRIBUTES:
        columns[f"attr_{name}"] = pd.Series([a.get(name, math.nan) for a in annotations], dtype="float64")
    for name in TEXT_ATTRIBUTES:
        columns[f"attr_{name}"] = pd.Series([a.get(name, pd.NA) for a in annotations], dtype="string")
    columns["attr_object"] = pd.Series([list(a.get("object", [])) for a in annotations], dtype="object")
    return pd.DataFrame(columns)


def _is_number(value) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _present(column: pd.Series) -> int:
    if column.dtype == object:
        return int(sum(len(v) > 0 for v in column))
    return int(column.notna().sum())
