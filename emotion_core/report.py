"""Tables in the paper's layout, and tables formatted for people (no None, NaN or Infinity)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from emotion_core.labels import FI_CLASSES, ClassSet

MISSING = "—"   # what an empty cell says
KINDS = ("text", "count", "percent", "ratio", "p")


@dataclass(frozen=True)
class Column:
    """How one column is shown: its header in words, the kind of number it holds (percent: a share,
    shown as 12.5%; ratio: 2.35; p: a p- or q-value; count: 1,234), and what an infinite value means
    in it (e.g. a lift whose reference share is 0)."""
    header: str
    kind: str = "text"
    infinite: str = MISSING

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}; valid: {', '.join(KINDS)}")


def display_value(value: Any, kind: str = "text", *, infinite: str = MISSING) -> str:
    """One cell for people: '12.5%', '2.35', '0.004' or '< 0.001', '1,234'; '—' when missing (and for
    an infinite value unless the column says what it means)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if kind == "text" or isinstance(value, str):
        return str(value)
    value = float(value)
    if math.isinf(value):
        return infinite if value > 0 else MISSING
    if kind == "percent":
        return f"{value:.1%}"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "p":
        return "< 0.001" if value < 0.001 else f"{value:.3f}"
    return f"{value:,.0f}"


def format_table(table: pd.DataFrame, columns: Mapping[str, Column]) -> pd.DataFrame:
    """The given columns of `table`, in that order, under their headers, every cell a string for people.

    Strings, not numbers with a display format: a dashboard grid shows a missing number as "None"
    whatever its format says, and a table downloaded from it then reads as it did on screen."""
    _check_columns(table, columns)
    return pd.DataFrame({column.header: [display_value(v, column.kind, infinite=column.infinite) for v in table[name]]
                         for name, column in columns.items()})


def _check_columns(table: pd.DataFrame, columns: Mapping[str, Column]) -> None:
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise ValueError(f"table has no column {', '.join(map(repr, missing))}; it has: {', '.join(table.columns)}")


# The paper's per-class table (Table 2 of paper.md): shares as percentages with one decimal.
PAPER_COLUMNS = {"Emotion": Column("Emotion"), "Prec.": Column("Prec.", "percent"),
                 "Recall": Column("Recall", "percent"), "F1": Column("F1", "percent"),
                 "Support": Column("Support", "count"), "Train Count": Column("Train Count", "count"),
                 "Dev Count": Column("Dev Count", "count"), "Test Count": Column("Test Count", "count")}


def paper_table(split_metrics: dict, split_counts: dict, *, classes: ClassSet = FI_CLASSES) -> pd.DataFrame:
    """Emotion | Prec. | Recall | F1 | Train/Dev/Test Count, with an Overall row (accuracy; its recall
    and F1 are empty, NaN)."""
    rows = []
    for entry in split_metrics["per_class"]:
        counts = split_counts.get(entry["emotion"], {})
        rows.append({"Emotion": classes.display_name(entry["emotion"]), "Prec.": entry["precision"], "Recall": entry["recall"],
                     "F1": entry["f1"], "Support": entry["support"], "Train Count": counts.get("train", 0),
                     "Dev Count": counts.get("dev", 0), "Test Count": counts.get("test", 0)})
    table = pd.DataFrame(rows)
    overall = {"Emotion": "Overall (accuracy)", "Prec.": split_metrics["accuracy"], "Recall": float("nan"),
               "F1": float("nan"), "Support": int(table["Support"].sum())}
    overall.update({c: int(table[c].sum()) for c in ("Train Count", "Dev Count", "Test Count")})
    return pd.concat([table, pd.DataFrame([overall])], ignore_index=True)
