"""Dataset dirs (manifest.parquet + import report) and the torch Dataset over them."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from emotion_core.attributes import pixel_row
from emotion_core.fileio import write_json, write_parquet
from emotion_core.images import ImageLoadError, load_image
from emotion_core.importers import ordered_columns
from emotion_core.labels import CLASSES_FILE, FI_CLASSES, ClassSet, read_classes

MANIFEST_FILE = "manifest.parquet"
REPORT_FILE = "import_report.json"
REQUIRED_COLUMNS = ("image_id", "path", "label", "split")


class DatasetError(ValueError):
    """A dataset dir that cannot be used; one line for the user."""


def write_dataset(out_dir: str | os.PathLike, manifest: pd.DataFrame, report: dict,
                  classes: ClassSet = FI_CLASSES) -> Path:
    """Write classes.json, import_report.json and manifest.parquet, each atomically; the
    manifest last, so a manifest is never read beside another import's classes."""
    unknown = sorted(set(manifest["label"].dropna()) - set(classes.names))
    if unknown or manifest["label"].isna().any():
        shown = repr(unknown[0]) if unknown else "<empty>"
        raise DatasetError(f"label {shown} is not a class of the dataset; classes: {', '.join(classes.names)}")
    out_dir = Path(out_dir)
    write_json(out_dir / CLASSES_FILE, classes.to_dict())
    write_json(out_dir / REPORT_FILE, report)
    write_parquet(out_dir / MANIFEST_FILE, manifest[ordered_columns(manifest)])
    return out_dir


def read_dataset(dataset_dir: str | os.PathLike) -> tuple[pd.DataFrame, ClassSet]:
    """The manifest (absolute paths, a label_idx column into the class set, list columns as
    Python lists) and the dataset's class set (classes.json; FI's when absent); checks the contract."""
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / MANIFEST_FILE
    if not path.is_file():
        raise DatasetError(f"{dataset_dir}: no {MANIFEST_FILE} (create one with python -m training.prepare)")
    try:
        classes = read_classes(dataset_dir)
    except ValueError as err:
        raise DatasetError(str(err)) from None
    frame = pd.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{path}: missing column {missing[0]!r}")
    unknown = sorted(set(frame["label"].dropna()) - set(classes.names))
    if unknown or frame["label"].isna().any():
        shown = repr(unknown[0]) if unknown else "<empty>"
        raise DatasetError(f"{path}: unknown label {shown}; the dataset's classes: {', '.join(classes.names)}")
    for column in ("agree", "disagree"):
        if column not in frame:
            frame[column] = pd.array([pd.NA] * len(frame), dtype="Int64")
    _lists_as_lists(frame)
    frame["path"] = [p if os.path.isabs(p) else str(dataset_dir / p) for p in frame["path"]]
    frame["label_idx"] = frame["label"].map(classes.index).astype("int64")
    return frame, classes


def read_manifest(dataset_dir: str | os.PathLike) -> pd.DataFrame:
    """read_dataset's manifest alone."""
    return read_dataset(dataset_dir)[0]


def _lists_as_lists(frame: pd.DataFrame) -> None:
    """Parquet gives list columns (EmoSet's attr_object) back as numpy arrays: make them the
    Python lists that were written, so equality and JSON work as on the importer's table."""
    for column in frame.columns[frame.dtypes == object]:
        values = frame[column]
        first = next((v for v in values if v is not None), None)  # a list column holds arrays throughout
        if isinstance(first, np.ndarray):
            frame[column] = [v.tolist() if isinstance(v, np.ndarray) else v for v in values]


def split_rows(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    rows = frame[frame["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise DatasetError(f"the dataset has no {split!r} images (splits present: "
                           f"{', '.join(sorted(frame['split'].unique()))})")
    return rows


class ImageDataset(Dataset):
    """(image tensor, label index, row index, loaded ok) per manifest row, and with
    attributes=True a fifth item: the image's pixel attributes (emotion_core.attributes.
    pixel_row), computed from the same decoded image, in whichever process loads it.

    A file that fails to load gives a zero image and ok=False (and all-NaN attributes)
    instead of killing a long run; callers mask or drop those rows and count them.
    """

    def __init__(self, frame: pd.DataFrame, transform: Callable, input_size: int, *, attributes: bool = False):
        self.paths = frame["path"].tolist()
        self.labels = frame["label_idx"].tolist()
        self.transform = transform
        self.input_size = input_size
        self.attributes = attributes

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        try:
            decoded = load_image(self.paths[index])
        except ImageLoadError:
            decoded = None
        if decoded is None:
            image, ok = torch.zeros(3, self.input_size, self.input_size), False
        else:
            image, ok = self.transform(decoded), True
        if self.attributes:
            return image, self.labels[index], index, ok, pixel_row(decoded)
        return image, self.labels[index], index, ok
