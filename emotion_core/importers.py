"""Importing FI vote files, class folders and manifest CSVs into one manifest table.

Every importer returns (manifest, report). The manifest follows DESIGN.md:
image_id, path, label, agree, disagree, split, source (+ optional votes_<emotion>).
Bad input raises DataImportError with one line naming the file and line.
"""
from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
from tqdm import tqdm

from emotion_core.images import MISSING, NOT_AN_IMAGE, ImageLoadError, is_placeholder, load_image
from emotion_core.labels import EMOTIONS, parse_emotion

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
SKIP_MISSING, SKIP_UNREADABLE, SKIP_PLACEHOLDER = MISSING, NOT_AN_IMAGE, "placeholder"
MANIFEST_COLUMNS = ["image_id", "path", "label", "agree", "disagree", "split", "source"]


class DataImportError(ValueError):
    """Bad import input; the message is one line naming the file (and line)."""


@dataclass
class ImportReport:
    source: str
    rows_read: int = 0
    minority_votes: int = 0          # rows where agree <= disagree (not a positive label)
    duplicates_resolved: int = 0     # URLs positive for several emotions, one label kept
    ambiguous: list[dict] = field(default_factory=list)
    skipped: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    kept: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "minority_votes": self.minority_votes,
            "duplicates_resolved": self.duplicates_resolved,
            "ambiguous_count": len(self.ambiguous),
            "ambiguous": self.ambiguous,
            "kept_total": sum(self.kept.values()),
            "skipped_total": sum(sum(c.values()) for c in self.skipped.values()),
            "per_class": {e: {"kept": self.kept.get(e, 0), "skipped": dict(self.skipped.get(e, {}))}
                          for e in EMOTIONS},
            "skipped_by_reason": dict(sum(self.skipped.values(), Counter())),
        }


# ---- FI raw vote files -------------------------------------------------------------------

def read_vote_file(path: Path, emotion: str) -> list[dict]:
    """Rows id,url,disagree,agree of one header-less FI vote file."""
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for line_no, fields in enumerate(csv.reader(handle), start=1):
            if not fields or all(not f.strip() for f in fields):
                continue
            if line_no == 1 and [f.strip().lower() for f in fields] == ["id", "url", "disagree", "agree"]:
                continue  # tolerate a header although FI ships none
            if len(fields) != 4:
                raise DataImportError(f"{path.name} line {line_no}: expected 4 fields "
                                      f"id,url,disagree,agree, got {len(fields)}")
            try:
                disagree, agree = int(fields[2]), int(fields[3])
            except ValueError:
                raise DataImportError(f"{path.name} line {line_no}: votes must be whole numbers, "
                                      f"got {fields[2]!r},{fields[3]!r}") from None
            if min(disagree, agree) < 0 or not fields[1].strip():
                raise DataImportError(f"{path.name} line {line_no}: negative votes or empty url")
            rows.append({"fi_id": fields[0].strip(), "url": fields[1].strip(), "label": emotion,
                         "agree": agree, "disagree": disagree})
    return rows


def find_vote_files(votes_dir: Path) -> dict[str, list[Path]]:
    if not votes_dir.is_dir():
        raise DataImportError(f"{votes_dir}: vote folder not found")
    files: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(votes_dir.glob("*.csv")):
        prefix = path.stem.split("_")[0]
        try:
            files[parse_emotion(prefix)].append(path)
        except ValueError:
            raise DataImportError(f"{path.name}: file name does not start with an emotion "
                                  f"(<emotion>_*.csv); valid: {', '.join(EMOTIONS)}") from None
    if not files:
        raise DataImportError(f"{votes_dir}: no <emotion>_*.csv vote files")
    return files


def resolve_fi_labels(rows: pd.DataFrame, report: ImportReport) -> pd.DataFrame:
    """The paper's rules: positive majority only; per URL the least divisive label; ties out."""
    positive = rows[rows["agree"] > rows["disagree"]].copy()
    report.minority_votes = int(len(rows) - len(positive))
    positive["agreement"] = positive["agree"] / (positive["agree"] + positive["disagree"])
    positive = positive.sort_values(["url", "agreement", "agree"], ascending=[True, False, False])
    positive = positive.drop_duplicates(["url", "label"])  # the same row listed twice
    kept = []
    for url, group in positive.groupby("url", sort=False):
        best = group.iloc[0]
        rivals = group[(group["agreement"] == best["agreement"]) & (group["agree"] == best["agree"])]
        if len(rivals) > 1:
            report.ambiguous.append({"url": url, "labels": sorted(rivals["label"]),
                                     "agree": int(best["agree"]), "disagree": int(best["disagree"])})
            continue
        if len(group) > 1:
            report.duplicates_resolved += 1
        kept.append(best)
    return pd.DataFrame(kept, columns=positive.columns).drop(columns="agreement")


def import_fi(votes_dir: str | os.PathLike, images_dir: str | os.PathLike, *,
              workers: int | None = None) -> tuple[pd.DataFrame, ImportReport]:
    votes_dir, images_dir = Path(votes_dir), Path(images_dir)
    report = ImportReport(source=f"fi votes={votes_dir} images={images_dir}")
    rows = [row for emotion, paths in find_vote_files(votes_dir).items()
            for path in paths for row in read_vote_file(path, emotion)]
    report.rows_read = len(rows)
    if not rows:
        raise DataImportError(f"{votes_dir}: the vote files hold no rows")
    labelled = resolve_fi_labels(pd.DataFrame(rows), report)
    basenames = labelled["url"].map(lambda u: os.path.basename(u.split("?")[0]))
    labelled["path"] = [str(images_dir / label / name) for label, name in zip(labelled["label"], basenames)]
    labelled["image_id"] = _unique_ids(basenames.map(lambda n: Path(n).stem), labelled["url"])
    labelled["source"] = labelled["url"]
    return _keep_loadable(labelled, report, workers), report


def _unique_ids(stems: pd.Series, keys: pd.Series) -> list[str]:
    """Stems as ids; a stem shared by different keys gets a short hash of its key."""
    counts = Counter(stems)
    return [s if counts[s] == 1 else f"{s}-{hashlib.sha1(k.encode()).hexdigest()[:8]}"
            for s, k in zip(stems, keys)]


# ---- class folders -----------------------------------------------------------------------

def import_folder(root: str | os.PathLike, *, workers: int | None = None) -> tuple[pd.DataFrame, ImportReport]:
    """<root>/<emotion>/<file>, folder names matched case-insensitively; no votes."""
    root = Path(root)
    if not root.is_dir():
        raise DataImportError(f"{root}: folder not found")
    report = ImportReport(source=f"folder {root}")
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            emotion = parse_emotion(folder.name)
        except ValueError:
            raise DataImportError(f"{folder}: folder name is not an emotion; valid: {', '.join(EMOTIONS)}") from None
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                report.skipped[emotion][SKIP_UNREADABLE] += 1
                continue
            rows.append({"image_id": path.relative_to(root).with_suffix("").as_posix(),
                         "path": str(path.resolve()), "label": emotion, "agree": pd.NA,
                         "disagree": pd.NA, "source": ""})
    report.rows_read = len(rows)
    if not rows:
        raise DataImportError(f"{root}: no images in <root>/<emotion>/ folders")
    return _keep_loadable(pd.DataFrame(rows), report, workers), report


# ---- manifest CSV ------------------------------------------------------------------------

def import_manifest(csv_path: str | os.PathLike, *, path_column: str = "path", label_column: str = "label",
                    workers: int | None = None) -> tuple[pd.DataFrame, ImportReport]:
    """A CSV with at least a path and a label column; votes, split, image_id optional."""
    csv_path = Path(csv_path)
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataImportError(f"{csv_path}: file not found") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise DataImportError(f"{csv_path.name}: not a readable CSV ({str(err).splitlines()[0]})") from None
    for column in (path_column, label_column):
        if column not in table.columns:
            raise DataImportError(f"{csv_path.name}: missing column {column!r}; "
                                  f"columns are {', '.join(table.columns)}")
    report = ImportReport(source=f"manifest {csv_path}", rows_read=len(table))
    if table.empty:
        raise DataImportError(f"{csv_path.name}: no rows")
    frame = pd.DataFrame({"path": [_resolve(p, csv_path.parent) for p in table[path_column]]})
    frame["label"] = [_label_at(v, csv_path.name, i) for i, v in enumerate(table[label_column])]
    for column in ("agree", "disagree"):
        frame[column] = _int_column(table, column, csv_path.name)
    frame["image_id"] = table["image_id"] if "image_id" in table else _default_ids(table[path_column])
    if frame["image_id"].duplicated().any():
        dup = frame.loc[frame["image_id"].duplicated(), "image_id"].iloc[0]
        raise DataImportError(f"{csv_path.name}: image_id {dup!r} appears more than once")
    frame["source"] = table["source"] if "source" in table else ""
    if "split" in table:
        frame["split"] = [_split_at(v, csv_path.name, i) for i, v in enumerate(table["split"])]
    for emotion in EMOTIONS:
        if f"votes_{emotion}" in table:
            frame[f"votes_{emotion}"] = _int_column(table, f"votes_{emotion}", csv_path.name)
    handled = {path_column, label_column, "agree", "disagree", "image_id", "source", "split"}
    for column in table.columns:  # the user's own metadata travels along as text
        if column not in handled and column not in frame:
            frame[column] = table[column]
    return _keep_loadable(frame, report, workers), report


def _resolve(path: str, base: Path) -> str:
    candidate = Path(path)
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def _label_at(value: str, file_name: str, index: int) -> str:
    try:
        return parse_emotion(value)
    except ValueError as err:
        raise DataImportError(f"{file_name} line {index + 2}: {err}") from None


def _split_at(value: str, file_name: str, index: int) -> str:
    if value.strip().lower() not in ("train", "dev", "test"):
        raise DataImportError(f"{file_name} line {index + 2}: split {value!r} must be train, dev or test")
    return value.strip().lower()


def _int_column(table: pd.DataFrame, column: str, file_name: str) -> pd.Series:
    if column not in table:
        return pd.Series(pd.NA, index=table.index, dtype="Int64")
    values = pd.to_numeric(table[column].replace("", None), errors="coerce")
    bad = values.isna() & (table[column].str.strip() != "")
    bad |= values.notna() & ((values < 0) | (values % 1 != 0))
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0])
        raise DataImportError(f"{file_name} line {line + 2}: {column} {table[column].iloc[line]!r} "
                              "is not a non-negative whole number")
    return values.astype("Int64")


def _default_ids(paths: pd.Series) -> list[str]:
    stems = paths.map(lambda p: Path(p).with_suffix("").as_posix().lstrip("./"))
    return _unique_ids(stems, paths)


# ---- shared: checking images -------------------------------------------------------------

def check_image(path: str) -> str | None:
    """None if the image is usable, else the skip reason (missing, unreadable,
    truncated, too large, placeholder)."""
    if not os.path.isfile(path):
        return SKIP_MISSING
    try:
        image = load_image(path)
    except ImageLoadError as err:
        return err.reason
    return SKIP_PLACEHOLDER if is_placeholder(image) else None


def _keep_loadable(frame: pd.DataFrame, report: ImportReport, workers: int | None,
                   check: Callable[[str], str | None] = check_image) -> pd.DataFrame:
    # Decoding releases the GIL, so threads check images in parallel.
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 2)) as pool:
        reasons = list(tqdm(pool.map(check, frame["path"]), total=len(frame),
                            desc="checking images", unit="img", leave=False))
    for label, reason in zip(frame["label"], reasons):
        if reason:
            report.skipped[label][reason] += 1
        else:
            report.kept[label] += 1
    kept = frame[[reason is None for reason in reasons]].reset_index(drop=True)
    for column in ("agree", "disagree"):
        kept[column] = kept[column].astype("Int64")
    return kept


def ordered_columns(frame: pd.DataFrame) -> list[str]:
    extra = [c for c in frame.columns if c not in MANIFEST_COLUMNS]
    return [c for c in MANIFEST_COLUMNS if c in frame.columns] + extra

