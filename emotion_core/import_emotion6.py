"""Emotion6: Ekman's six plus neutral, as probability distributions, with valence and arousal.

  <root>/ground_truth.txt   tab-separated; header [image_filename] [valence] [arousal]
                            [prob. anger] [prob. disgust] ... [prob. neutral]
                            disgust/1.jpg  2.5  3.8  0.133333  0.7  0  0.0666667  0.1  0  0
  <root>/images/<folder>/N.jpg   (the folder is the search keyword, not the label)

Columns are mapped by the header's names. The probabilities become votes_<class> (float64;
agree/disagree stay empty: there are no counts), valence and arousal are kept, the label is
the most probable class; images whose top probability is shared are left out and reported.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pandas as pd

from emotion_core.importers import DataImportError, ImportReport, ground_truth_table, keep_loadable, unique_ids
from emotion_core.labels import ClassSet

GROUND_TRUTH = "ground_truth.txt"
IMAGES = "images"
PROBABILITY_TOLERANCE = 1e-3   # the file's probabilities are rounded to about 6 digits
TIE_TOLERANCE = 1e-6           # 0.333333 and 0.3333333 are the same share
# Surprise has no polarity: it is as often pleasant as not, so it is left out of the
# (optional, per-class) polarity map rather than forced to one side.
EMOTION6_CLASSES = ClassSet(
    ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"),
    polarity={"anger": "negative", "disgust": "negative", "fear": "negative", "joy": "positive",
              "sadness": "negative", "neutral": "neutral"},
    kind="emotion6")
FILENAME, VALENCE, AROUSAL = "image_filename", "valence", "arousal"


def import_emotion6(root: str | os.PathLike, *,
                    workers: int | None = None) -> tuple[pd.DataFrame, ImportReport, ClassSet]:
    root = Path(root)
    header, rows = ground_truth_table(root, GROUND_TRUTH, IMAGES)
    columns = header_columns(*header)
    table = read_rows(rows, columns)
    report = ImportReport(source=f"emotion6 {root}", rows_read=len(table), classes=EMOTION6_CLASSES)
    frame = label_by_probability(table, report)
    frame["path"] = [os.path.normpath(root.absolute() / IMAGES / name) for name in frame["name"]]
    frame["image_id"] = unique_ids(frame["name"].map(lambda name: Path(name).with_suffix("").as_posix()),
                                    frame["name"])
    frame["keyword"] = [Path(name).parent.as_posix() if Path(name).parent.name else "" for name in frame["name"]]
    frame["source"] = ""
    frame = frame.drop(columns="name")
    return keep_loadable(frame, report, workers), report, EMOTION6_CLASSES


def header_columns(line_no: int, line: str) -> list[str]:
    """The header's names as column keys: image_filename, valence, arousal, votes_<class>."""
    names = re.findall(r"\[([^\]]*)\]", line) or line.split("\t")
    columns = []
    for name in names:
        key = name.strip().lower()
        probability = re.fullmatch(r"prob\.?\s*(.+)", key)
        if probability:
            emotion = probability.group(1).strip()
            if emotion not in EMOTION6_CLASSES:
                raise DataImportError(f"{GROUND_TRUTH} line {line_no}: column [{name}] is not an Emotion6 class "
                                      f"({', '.join(EMOTION6_CLASSES.names)})")
            key = f"votes_{emotion}"
        elif key not in (FILENAME, VALENCE, AROUSAL):
            raise DataImportError(f"{GROUND_TRUTH} line {line_no}: unknown column [{name}]; expected "
                                  "[image_filename] [valence] [arousal] and [prob. <class>] per class")
        if key in columns:
            raise DataImportError(f"{GROUND_TRUTH} line {line_no}: column [{name}] appears twice")
        columns.append(key)
    expected = [FILENAME, VALENCE, AROUSAL] + [f"votes_{e}" for e in EMOTION6_CLASSES]
    missing = [key for key in expected if key not in columns]
    if missing:
        raise DataImportError(f"{GROUND_TRUTH} line {line_no}: no column for {missing[0]}")
    return columns


def read_rows(lines: list[tuple[int, str]], columns: list[str]) -> pd.DataFrame:
    rows, first_line = [], {}
    for line_no, line in lines:
        cells = [cell.strip() for cell in (line.split("\t") if "\t" in line else line.split())]
        where = f"{GROUND_TRUTH} line {line_no}"
        if len(cells) != len(columns):
            raise DataImportError(f"{where}: {len(cells)} fields, the header has {len(columns)}")
        row = dict(zip(columns, cells))
        name = row.pop(FILENAME)
        if name in first_line:
            raise DataImportError(f"{where}: image {name!r} is also on line {first_line[name]}")
        first_line[name] = line_no
        values = {key: _number(value, key, where) for key, value in row.items()}
        _check_distribution([values[f"votes_{e}"] for e in EMOTION6_CLASSES], where)
        rows.append({"name": name, **values})
    if not rows:
        raise DataImportError(f"{GROUND_TRUTH}: no image lines after the header")
    table = pd.DataFrame(rows)
    return table[["name", VALENCE, AROUSAL] + [f"votes_{e}" for e in EMOTION6_CLASSES]].astype(
        {VALENCE: "float64", AROUSAL: "float64"})


def _number(value: str, key: str, where: str) -> float:
    try:
        number = float(value)  # valence may be a bare integer ('3'): float takes it
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        shown = key.replace("votes_", "prob. ")
        raise DataImportError(f"{where}: {shown} {value!r} is not a number")
    return number


def _check_distribution(probabilities: list[float], where: str) -> None:
    if min(probabilities) < 0 or max(probabilities) > 1:
        raise DataImportError(f"{where}: probabilities must lie in 0..1")
    total = sum(probabilities)
    if abs(total - 1) > PROBABILITY_TOLERANCE:
        raise DataImportError(f"{where}: probabilities sum to {total:.6g}, not 1 (±{PROBABILITY_TOLERANCE:g})")


def label_by_probability(table: pd.DataFrame, report: ImportReport) -> pd.DataFrame:
    probabilities = table[[f"votes_{e}" for e in EMOTION6_CLASSES]].to_numpy()
    top = probabilities.max(axis=1)
    winners = probabilities >= top[:, None] - TIE_TOLERANCE
    for row in (winners.sum(axis=1) > 1).nonzero()[0]:
        report.ambiguous.append({"image": table["name"].iloc[row], "probability": float(top[row]),
                                 "labels": [e for e, won in zip(EMOTION6_CLASSES, winners[row]) if won]})
    clear = winners.sum(axis=1) == 1
    frame = table[clear].reset_index(drop=True)
    frame["label"] = [EMOTION6_CLASSES.names[i] for i in probabilities[clear].argmax(axis=1)]
    frame["agree"] = pd.array([pd.NA] * len(frame), dtype="Int64")   # no counts in Emotion6
    frame["disagree"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    return frame
