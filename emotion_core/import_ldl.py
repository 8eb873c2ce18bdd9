"""Flickr_LDL and Twitter_LDL: full vote distributions over Mikels' eight emotions.

  <root>/ground_truth.txt   images-name Amusement Awe Contentment Excitement Anger Disgust Fear Sadness
                            1.jpg 0 1 6 1 0 0 2 1
  <root>/images/<name>

Columns are mapped by the header's names, never by position. The counts become
votes_<emotion>; the label is the emotion with the most votes; agree = its votes, disagree =
the other votes. Images whose top count is shared are ambiguous: left out and reported, as
FI's exact ties are. There is no official split (training.prepare makes a stratified one).
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from emotion_core.importers import (DataImportError, ImportReport, class_of, ground_truth_table, keep_loadable,
                                    unique_ids)
from emotion_core.labels import MIKELS8, ClassSet

GROUND_TRUTH = "ground_truth.txt"
IMAGES = "images"


def import_ldl(root: str | os.PathLike, *,
               workers: int | None = None) -> tuple[pd.DataFrame, ImportReport, ClassSet]:
    root = Path(root)
    header, rows = ground_truth_table(root, GROUND_TRUTH, IMAGES)
    emotions = header_emotions(*header)
    votes = read_vote_rows(rows, emotions)
    report = ImportReport(source=f"ldl {root}", rows_read=len(votes), classes=MIKELS8)
    frame = label_by_majority(votes, report)
    frame["path"] = image_paths(root / IMAGES, frame.pop("name"))
    manifest = keep_loadable(frame, report, workers)
    report.details = {"plurality_only": int((manifest["agree"] <= manifest["disagree"]).sum())}
    return manifest, report, MIKELS8


def header_emotions(line_no: int, line: str) -> list[str]:
    """The emotion of every count column, in the file's order (first column: the image name)."""
    names = line.split()[1:]
    emotions = []
    for name in names:
        try:
            emotion = class_of(name, MIKELS8)
        except ValueError:
            raise DataImportError(f"{GROUND_TRUTH} line {line_no}: column {name!r} is not one of Mikels' "
                                  f"eight emotions ({', '.join(MIKELS8.names)})") from None
        if emotion in emotions:
            raise DataImportError(f"{GROUND_TRUTH} line {line_no}: column {name!r} appears twice")
        emotions.append(emotion)
    missing = [e for e in MIKELS8.names if e not in emotions]
    if missing:
        raise DataImportError(f"{GROUND_TRUTH} line {line_no}: no column for {missing[0]!r}; expected an image "
                              "name column and one count column per emotion")
    return emotions


def read_vote_rows(lines: list[tuple[int, str]], emotions: list[str]) -> pd.DataFrame:
    """One row per image: name, line and votes_<emotion> counts; a name listed twice is refused."""
    rows, first_line = [], {}
    for line_no, line in lines:
        name, *cells = line.split()
        where = f"{GROUND_TRUTH} line {line_no}"
        if len(cells) != len(emotions):
            raise DataImportError(f"{where}: {len(cells)} vote counts, the header names {len(emotions)} emotions")
        bad = next((cell for cell in cells if not (cell.isascii() and cell.isdigit())), None)
        if bad is not None:
            raise DataImportError(f"{where}: vote count {bad!r} is not a non-negative whole number")
        if name in first_line:
            raise DataImportError(f"{where}: image {name!r} is also on line {first_line[name]}")
        first_line[name] = line_no
        rows.append({"name": name, **{f"votes_{e}": int(c) for e, c in zip(emotions, cells)}})
    if not rows:
        raise DataImportError(f"{GROUND_TRUTH}: no image lines after the header")
    votes = pd.DataFrame(rows)
    return votes[["name"] + [f"votes_{e}" for e in MIKELS8.names]]  # the class set's order


def label_by_majority(votes: pd.DataFrame, report: ImportReport) -> pd.DataFrame:
    """label, agree, disagree per image whose top count is one emotion's; ties go to the report."""
    counts = votes[[f"votes_{e}" for e in MIKELS8.names]].to_numpy()
    top = counts.max(axis=1)
    winners = counts == top[:, None]
    for row in (winners.sum(axis=1) > 1).nonzero()[0]:
        report.ambiguous.append({"image": votes["name"].iloc[row], "votes": int(top[row]),
                                 "labels": [e for e, won in zip(MIKELS8.names, winners[row]) if won]})
    clear = winners.sum(axis=1) == 1
    frame = votes[clear].reset_index(drop=True)
    frame["label"] = [MIKELS8.names[i] for i in counts[clear].argmax(axis=1)]
    frame["agree"] = top[clear]
    frame["disagree"] = counts[clear].sum(axis=1) - top[clear]
    frame["image_id"] = unique_ids(frame["name"].map(lambda name: Path(name).stem), frame["name"])
    frame["source"] = ""
    for column in [c for c in frame if c.startswith("votes_")] + ["agree", "disagree"]:
        frame[column] = frame[column].astype("Int64")
    return frame


def image_paths(images_dir: Path, names: pd.Series) -> list[str]:
    """images/<name>; a name without a suffix matches the one file with that stem."""
    # One listing instead of a stat per image: fast on network drives.
    files = sorted(entry.name for entry in os.scandir(images_dir) if entry.is_file())
    by_stem: dict[str, list[str]] = {}
    for file_name in files:
        by_stem.setdefault(Path(file_name).stem, []).append(file_name)
    paths = []
    for name in names:
        found = by_stem.get(name, []) if not Path(name).suffix else []
        paths.append(str(images_dir.absolute() / (found[0] if len(found) == 1 else name)))
    return paths
