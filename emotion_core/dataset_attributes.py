"""Dataset attributes: what a dataset says about each image beside its label (EmoSet's scene,
objects, facial expression, human action, brightness and colourfulness; Emotion6's valence and
arousal). The manifest carries them (attr_<name>, valence, arousal), evaluation copies them into
predictions.parquet, the gallery shows and filters them, and Trends tests them like the automatic
attributes: numbers as continuous features, categories (and lists such as EmoSet's objects) one
value at a time.
"""
from __future__ import annotations

from typing import Collection, Mapping

import numpy as np
import pandas as pd

from emotion_core.report import display_value

PREFIX = "attr_"
NUMERIC_EXTRAS = ("valence", "arousal")  # Emotion6's columns, named as the release names them
LIST_TYPES = (list, tuple, np.ndarray)


def dataset_columns(columns: Collection[str]) -> list[str]:
    """The dataset-attribute columns among `columns`, in their order."""
    return [c for c in columns if c.startswith(PREFIX) or c in NUMERIC_EXTRAS]


def is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def is_list(column: pd.Series) -> bool:
    """A column of lists (EmoSet's attr_object); pandas holds it as objects, so look at a value."""
    if column.dtype != object:
        return False
    first = next((v for v in column if isinstance(v, LIST_TYPES) or (v is not None and not _missing(v))), None)
    return isinstance(first, LIST_TYPES)


def numeric_columns(table: pd.DataFrame) -> list[str]:
    """The dataset attributes tested as numbers: attr_brightness, attr_colorfulness, valence, arousal."""
    return [c for c in dataset_columns(table.columns) if is_numeric(table[c])]


def categorical_columns(table: pd.DataFrame) -> list[str]:
    """The dataset attributes tested value by value (strings and lists): attr_scene, attr_object, ..."""
    return [c for c in dataset_columns(table.columns) if c.startswith(PREFIX) and not is_numeric(table[c])]


def attribute_name(column: str) -> str:
    """'attr_facial_expression' -> 'facial expression'."""
    return column.removeprefix(PREFIX).replace("_", " ")


def lists_as_lists(frame: pd.DataFrame) -> None:
    """Parquet gives list columns back as numpy arrays: make them the Python lists that were written
    (in place), so equality, `in` and JSON work as on the table that was saved."""
    for column in frame.columns[frame.dtypes == object]:
        values = frame[column]
        first = next((v for v in values if v is not None), None)  # a list column holds arrays throughout
        if isinstance(first, np.ndarray):
            frame[column] = [v.tolist() if isinstance(v, np.ndarray) else v for v in values]


def value_pairs(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row positions, value codes, values): one entry per row and distinct value it has (a list gives
    one per value it holds, a missing value none); values[code] is the value as a string."""
    listed = is_list(column)
    column = column.reset_index(drop=True)
    values = column.explode() if listed else column
    values = values[values.notna()]
    codes, uniques = pd.factorize(values.astype(str))
    positions = values.index.to_numpy(dtype=np.int64)
    if listed and len(uniques):  # a list naming a value twice counts it once
        keys = np.unique(positions * len(uniques) + codes)
        positions, codes = keys // len(uniques), keys % len(uniques)
    return positions, np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def values_by_frequency(column: pd.Series) -> pd.Series:
    """Rows per value, most frequent first (ties by value); a list counts each of its values once."""
    _, codes, values = value_pairs(column)
    counts = np.bincount(codes, minlength=len(values))
    order = np.lexsort((values.astype(str), -counts))
    return pd.Series(counts[order], index=pd.Index(values[order], dtype=object), dtype="int64")


def top_value_rows(column: pd.Series, top: int) -> dict[str, np.ndarray]:
    """The `top` most frequent values (values_by_frequency's order), each with its rows' positions."""
    positions, codes, values = value_pairs(column)
    counts = np.bincount(codes, minlength=len(values))
    order = np.lexsort((values.astype(str), -counts))[:top]
    return {values[code]: positions[codes == code] for code in order}


def has_any(column: pd.Series, wanted: Collection[str]) -> pd.Series:
    """Per row: its value (or one of its list's values) is among `wanted`."""
    wanted = {str(v) for v in wanted}
    if is_list(column):
        hits = [isinstance(v, LIST_TYPES) and any(str(x) in wanted for x in v) for v in column]
        return pd.Series(hits, index=column.index, dtype=bool)
    return (column.notna() & column.astype(str).isin(wanted)).astype(bool)


def filter_mask(rows: pd.DataFrame, wanted: Mapping[str, Collection[str]]) -> pd.Series:
    """Rows that have, for every attribute with chosen values, one of those values (the values of one
    attribute are alternatives; attributes combine with AND). Unknown columns are a ValueError."""
    unknown = [c for c in wanted if c not in rows]
    if unknown:
        valid = ", ".join(categorical_columns(rows)) or "none"
        raise ValueError(f"unknown dataset attribute {unknown[0]!r}; valid: {valid}")
    keep = pd.Series(True, index=rows.index)
    for column, values in wanted.items():
        if values:
            keep &= has_any(rows[column], values)
    return keep


def numeric_bounds(column: pd.Series) -> tuple[float, float] | None:
    """(lowest, highest) value of a numeric attribute, widened to whole hundredths so that a slider of
    step 0.01 reaches both; None when it has no two different values (nothing to filter)."""
    values = pd.to_numeric(column, errors="coerce").astype("float64")
    values = values[np.isfinite(values)]
    if values.empty or values.min() == values.max():
        return None
    return float(np.floor(values.min() * 100) / 100), float(np.ceil(values.max() * 100) / 100)


def range_mask(rows: pd.DataFrame, ranges: Mapping[str, tuple[float, float]]) -> pd.Series:
    """Rows whose value of every named numeric attribute lies in its (low, high) range, inclusive; a
    missing value is outside. Unknown or non-numeric columns, or low > high, are a ValueError."""
    keep = pd.Series(True, index=rows.index)
    for column, (low, high) in ranges.items():
        if column not in rows or not is_numeric(rows[column]):
            valid = ", ".join(numeric_columns(rows)) or "none"
            raise ValueError(f"not a numeric dataset attribute: {column!r}; valid: {valid}")
        if low > high:
            raise ValueError(f"empty range for {column!r}: {low} > {high}")
        values = pd.to_numeric(rows[column], errors="coerce").astype("float64")
        keep &= values.between(low, high).fillna(False).astype(bool)
    return keep


def filters_text(wanted: Mapping[str, Collection[str]], ranges: Mapping[str, tuple[float, float]]) -> str:
    """The dataset-attribute filters in force, in words: 'scene = beach, street; brightness 0.2–0.5'
    ('' when none), for the message when a cell has no image left."""
    parts = [f"{attribute_name(c)} = {', '.join(str(v) for v in values)}" for c, values in wanted.items() if values]
    parts += [f"{attribute_name(c)} {low:g}–{high:g}" for c, (low, high) in ranges.items()]
    return "; ".join(parts)


def describe(row: Mapping) -> str:
    """One image's dataset attributes in one line: 'scene mountain/snowy · object Sky, Tree · facial
    expression happy · brightness 0.4 · colorfulness 0.6' ('' when it has none)."""
    parts = []
    for column in dataset_columns(row.keys()):
        value = row[column]
        if isinstance(value, LIST_TYPES):
            text = ", ".join(str(v) for v in value)
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and not _missing(value):
            text = f"{float(value):.3g}"
        else:
            text = "" if _missing(value) else display_value(value)
        if text:
            parts.append(f"{attribute_name(column)} {text}")
    return " · ".join(parts)


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value))
