"""Importing FI vote files, class folders and manifest CSVs into one manifest table, and
what every importer shares (the report, image checks, class names, JSON with line numbers).

Every importer returns (manifest, report, classes). The manifest follows DESIGN.md:
image_id, path, label, agree, disagree, split, source (+ optional votes_<class> and
format-specific columns); every label is an id of `classes`. Bad input raises
DataImportError with one line naming the file and line. The other formats live in
import_emoset, import_ldl and import_emotion6.
"""
from __future__ import annotations

import bisect
import csv
import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping
from urllib.parse import urlsplit

import pandas as pd
from tqdm import tqdm

from emotion_core.images import MISSING, NOT_AN_IMAGE, ImageLoadError, is_placeholder, load_image
from emotion_core.labels import EMOTIONS, FI_CLASSES, ClassSet, parse_emotion

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
    duplicates_resolved: int = 0     # images positive for several emotions, one label kept
    duplicate_rows_merged: list[dict] = field(default_factory=list)  # the same (image, emotion) row again
    found_in: Counter = field(default_factory=Counter)  # FI: where the kept image files were found
    ambiguous: list[dict] = field(default_factory=list)
    skipped: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    kept: Counter = field(default_factory=Counter)
    classes: ClassSet = FI_CLASSES   # per_class follows the dataset's classes
    details: dict = field(default_factory=dict)  # format-specific counts (EmoSet attributes, ...)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "minority_votes": self.minority_votes,
            "duplicates_resolved": self.duplicates_resolved,
            "duplicate_rows_merged": self.duplicate_rows_merged,
            "ambiguous_count": len(self.ambiguous),
            "ambiguous": self.ambiguous,
            "kept_total": sum(self.kept.values()),
            "skipped_total": sum(sum(c.values()) for c in self.skipped.values()),
            "per_class": {e: {"kept": self.kept.get(e, 0), "skipped": dict(self.skipped.get(e, {}))}
                          for e in self.classes.names},
            "skipped_by_reason": dict(sum(self.skipped.values(), Counter())),
            "found_in": {where: self.found_in[where] for where in (FOUND_OWN, FOUND_OTHER, FOUND_FLAT)
                         if self.found_in},
            "details": self.details,
        }


# ---- FI raw vote files -------------------------------------------------------------------

# Where an FI image file was found (the manifest's found_in column, counted in the report).
FOUND_OWN, FOUND_OTHER, FOUND_FLAT = "own_emotion_folder", "other_emotion_folder", "flat_folder"


def read_vote_file(path: Path, emotion: str) -> list[dict]:
    """Rows id,url,disagree,agree of one header-less FI vote file, with their file and line."""
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
                         "agree": agree, "disagree": disagree, "where": f"{path.name} line {line_no}"})
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


def image_key(url: str) -> str:
    """One key per image: http/https and the host's letter case do not make another image
    (the path keeps its case: Flickr's file names are case-sensitive)."""
    parts = urlsplit(url)
    if not parts.netloc:
        return url
    return parts.netloc.lower() + parts.path + (f"?{parts.query}" if parts.query else "")


def merge_duplicate_rows(rows: pd.DataFrame, report: ImportReport) -> pd.DataFrame:
    """One row per (image, emotion). Copies with the same votes (a vote file saved twice) are
    merged and listed in the report; copies with other votes are refused: either could be right."""
    copies = rows[rows.duplicated(["key", "label"], keep=False)]
    for _, group in copies.groupby(["key", "label"], sort=False):
        first = group.iloc[0]
        for _, copy in group.iloc[1:].iterrows():
            if (copy["disagree"], copy["agree"]) != (first["disagree"], first["agree"]):
                raise DataImportError(
                    f"{copy['where']}: {copy['url']} is listed for {copy['label']} again with other votes "
                    f"({copy['disagree']},{copy['agree']}) than on {first['where']} "
                    f"({first['disagree']},{first['agree']})")
            report.duplicate_rows_merged.append({"url": first["url"], "label": first["label"],
                                                 "kept": first["where"], "merged": copy["where"]})
    return rows.drop_duplicates(["key", "label"])


def resolve_fi_labels(rows: pd.DataFrame, report: ImportReport) -> pd.DataFrame:
    """The paper's rules: positive majority (agree > disagree) only; per image the least divisive
    label, i.e. the highest agree share, then the most agree votes; exact ties are left out."""
    positive = rows[rows["agree"] > rows["disagree"]].copy()
    report.minority_votes = int(len(rows) - len(positive))
    positive["agreement"] = positive["agree"] / (positive["agree"] + positive["disagree"])
    positive = positive.sort_values(["key", "agreement", "agree"], ascending=[True, False, False])
    kept = []
    for _, group in positive.groupby("key", sort=False):
        best = group.iloc[0]
        rivals = group[(group["agreement"] == best["agreement"]) & (group["agree"] == best["agree"])]
        if len(rivals) > 1:
            report.ambiguous.append({"url": best["url"], "labels": sorted(rivals["label"]),
                                     "agree": int(best["agree"]), "disagree": int(best["disagree"])})
            continue
        if len(group) > 1:
            report.duplicates_resolved += 1
        kept.append(best)
    return pd.DataFrame(kept, columns=positive.columns).drop(columns="agreement")


def emotion_folders(images_dir: Path) -> dict[str, list[Path]]:
    """The sub-folders named after an emotion, in any letter case ('Anger', 'ANGER')."""
    folders: dict[str, list[Path]] = defaultdict(list)
    for folder in sorted(p for p in images_dir.iterdir() if p.is_dir()):
        try:
            folders[parse_emotion(folder.name)].append(folder)
        except ValueError:
            continue  # any other folder is not ours to judge
    return folders


def _file_names(folder: Path) -> set[str]:
    # One listing per folder instead of one stat per image and folder: fast on network drives.
    return {entry.name for entry in os.scandir(folder) if entry.is_file()}


def locate_images(labelled: pd.DataFrame, emotions_of: dict[str, set[str]],
                  images_dir: Path) -> tuple[list[str], list[str]]:
    """(path, found_in) per row: the label's folder first, then the folder of another emotion the
    image was voted for, then images_dir itself; a missing file keeps <images>/<label>/<name>."""
    folders = emotion_folders(images_dir)
    names_in = {folder: _file_names(folder) for group in folders.values() for folder in group}
    names_in[images_dir] = _file_names(images_dir)
    paths, found_in = [], []
    for key, label, name in zip(labelled["key"], labelled["label"], labelled["file_name"]):
        candidates = [(folder, FOUND_OWN) for folder in folders.get(label, [])]
        candidates += [(folder, FOUND_OTHER) for emotion in sorted(emotions_of[key] - {label})
                       for folder in folders.get(emotion, [])]
        candidates.append((images_dir, FOUND_FLAT))
        hit = next(((folder, where) for folder, where in candidates if name in names_in[folder]), None)
        paths.append(str((hit[0] if hit else images_dir / label) / name))
        found_in.append(hit[1] if hit else "")
    return paths, found_in


def import_fi(votes_dir: str | os.PathLike, images_dir: str | os.PathLike, *,
              workers: int | None = None) -> tuple[pd.DataFrame, ImportReport, ClassSet]:
    votes_dir, images_dir = Path(votes_dir), Path(images_dir)
    report = ImportReport(source=f"fi votes={votes_dir} images={images_dir}")
    rows = [row for emotion, paths in find_vote_files(votes_dir).items()
            for path in paths for row in read_vote_file(path, emotion)]
    report.rows_read = len(rows)
    if not rows:
        raise DataImportError(f"{votes_dir}: the vote files hold no rows")
    if not images_dir.is_dir():
        raise DataImportError(f"{images_dir}: image folder not found")
    rows = pd.DataFrame(rows)
    rows["key"] = rows["url"].map(image_key)
    rows = merge_duplicate_rows(rows, report)
    labelled = resolve_fi_labels(rows, report)
    if labelled.empty:
        raise DataImportError(
            f"{votes_dir}: no image has a majority-positive label (agree > disagree): of {len(rows)} rows, "
            f"{report.minority_votes} minority or tied votes, {len(report.ambiguous)} images tied "
            "between emotions; nothing to import")
    labelled["file_name"] = labelled["url"].map(lambda u: os.path.basename(urlsplit(u).path))
    emotions_of = rows.groupby("key")["label"].agg(set).to_dict()
    labelled["path"], labelled["found_in"] = locate_images(labelled, emotions_of, images_dir)
    labelled["image_id"] = unique_ids(labelled["file_name"].map(lambda n: Path(n).stem), labelled["key"])
    labelled["source"] = labelled["url"]
    labelled = labelled.drop(columns=["url", "key", "where", "file_name"])
    manifest = keep_loadable(labelled, report, workers)
    report.found_in = Counter(manifest["found_in"])
    return manifest, report, FI_CLASSES


def unique_ids(stems: pd.Series, keys: pd.Series) -> list[str]:
    """Stems as ids; a stem shared by different keys gets a short hash of its key."""
    counts = Counter(stems)
    return [s if counts[s] == 1 else f"{s}-{hashlib.sha1(k.encode()).hexdigest()[:8]}"
            for s, k in zip(stems, keys)]


# ---- class folders -----------------------------------------------------------------------

LABEL_FROM = ("folder", "prefix")


def import_folder(root: str | os.PathLike, *, label_from: str = "folder", classes: ClassSet = FI_CLASSES,
                  aliases: Mapping[str, str] | None = None,
                  workers: int | None = None) -> tuple[pd.DataFrame, ImportReport, ClassSet]:
    """Images labelled by their folder, <root>/<class>/<file> (label_from='folder'), or by their
    name's prefix in one flat folder, <root>/<class>_xxx.jpg (label_from='prefix', e.g. ArtPhoto).
    Names are matched case-insensitively to `classes` or, via `aliases`, to a class ('sad' ->
    'sadness'); no votes."""
    if label_from not in LABEL_FROM:
        raise ValueError(f"label_from {label_from!r}; valid: {', '.join(LABEL_FROM)}")
    root = Path(root)
    if not root.is_dir():
        raise DataImportError(f"{root}: folder not found")
    report = ImportReport(source=f"folder {root} ({label_from})", classes=classes)
    labelled = (_files_by_folder if label_from == "folder" else _files_by_prefix)(root, classes, aliases or {})
    rows = []
    for path, label in labelled:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            report.skipped[label][SKIP_UNREADABLE] += 1
            continue
        rows.append({"image_id": path.relative_to(root).with_suffix("").as_posix(),
                     "path": str(path.resolve()), "label": label, "agree": pd.NA,
                     "disagree": pd.NA, "source": ""})
    report.rows_read = len(rows)
    if not rows:
        where = "<root>/<class>/ folders" if label_from == "folder" else "<root>/<class>_*.jpg files"
        raise DataImportError(f"{root}: no images in {where}")
    return keep_loadable(pd.DataFrame(rows), report, workers), report, classes


def _visible_files(folder: Path, recursive: bool) -> list[Path]:
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and not p.name.startswith("."))


def _files_by_folder(root: Path, classes: ClassSet, aliases: Mapping[str, str]) -> list[tuple[Path, str]]:
    labelled = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            label = class_of(folder.name, classes, aliases)
        except ValueError:
            raise DataImportError(f"{folder}: folder name is not an emotion; "
                                  f"valid: {', '.join(classes.names)}") from None
        labelled += [(path, label) for path in _visible_files(folder, recursive=True)]
    return labelled


def _files_by_prefix(root: Path, classes: ClassSet, aliases: Mapping[str, str]) -> list[tuple[Path, str]]:
    labelled = []
    for path in _visible_files(root, recursive=False):
        prefix = path.stem.split("_")[0] if "_" in path.stem else ""
        try:
            labelled.append((path, class_of(prefix, classes, aliases)))
        except ValueError:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue  # a stray non-image file without a class prefix is no image of ours
            raise DataImportError(
                f"{path}: name prefix {prefix!r} is not a class (expected <class>_xxx{path.suffix}); "
                f"valid: {', '.join(classes.names)}; map other prefixes in a --classes file "
                "(a line like 'sadness = sad')") from None
    return labelled


# ---- manifest CSV ------------------------------------------------------------------------

def read_manifest_csv(csv_path: Path) -> tuple[pd.DataFrame, list[int]]:
    """The CSV as text, header names and cells stripped of whitespace, blank lines skipped,
    and the file line of every row (so errors name the line an editor shows)."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            return _rows_with_lines(csv.reader(handle), csv_path.name)
    except FileNotFoundError:
        raise DataImportError(f"{csv_path}: file not found") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise DataImportError(f"{csv_path.name}: not a readable CSV ({str(err).splitlines()[0]})") from None


def _rows_with_lines(reader, file_name: str) -> tuple[pd.DataFrame, list[int]]:
    header, rows, lines, next_line = None, [], [], 1
    for fields in reader:
        line, next_line = next_line, reader.line_num + 1  # a quoted cell may span lines
        cells = [field.strip() for field in fields]
        if not any(cells):
            continue
        if header is None:
            header = [name or f"unnamed_{i}" for i, name in enumerate(cells)]
            repeated = [name for name, count in Counter(header).items() if count > 1]
            if repeated:
                raise DataImportError(f"{file_name} line {line}: column {repeated[0]!r} appears more than once")
            continue
        if len(cells) > len(header):
            raise DataImportError(f"{file_name} line {line}: {len(cells)} fields, the header has {len(header)}")
        rows.append(cells + [""] * (len(header) - len(cells)))
        lines.append(line)
    if header is None:
        raise DataImportError(f"{file_name}: empty file, no header")
    return pd.DataFrame(rows, columns=header, dtype=str), lines


def import_manifest(csv_path: str | os.PathLike, *, path_column: str = "path", label_column: str = "label",
                    classes: ClassSet = FI_CLASSES, aliases: Mapping[str, str] | None = None,
                    workers: int | None = None) -> tuple[pd.DataFrame, ImportReport, ClassSet]:
    """A CSV with at least a path and a label column (labels: ids, display names or aliases of
    `classes`); votes (agree, disagree, votes_<class>), split, image_id optional."""
    csv_path = Path(csv_path)
    table, lines = read_manifest_csv(csv_path)
    name = csv_path.name
    for column in (path_column, label_column):
        if column not in table.columns:
            raise DataImportError(f"{name}: missing column {column!r}; columns are {', '.join(table.columns)}")
    report = ImportReport(source=f"manifest {csv_path}", rows_read=len(table), classes=classes)
    if table.empty:
        raise DataImportError(f"{name}: no rows")
    frame = pd.DataFrame({"path": [_resolve(p, csv_path.parent) for p in table[path_column]]})
    _refuse_repeats(frame["path"], table[path_column], "path", name, lines)
    frame["label"] = [_label_at(v, name, line, classes, aliases) for v, line in zip(table[label_column], lines)]
    for column in ("agree", "disagree"):
        frame[column] = _int_column(table, column, name, lines)
    frame["image_id"] = table["image_id"] if "image_id" in table else _default_ids(table[path_column])
    _refuse_repeats(frame["image_id"], frame["image_id"], "image_id", name, lines)
    frame["source"] = table["source"] if "source" in table else ""
    if "split" in table:
        frame["split"] = [_split_at(v, name, line) for v, line in zip(table["split"], lines)]
    for emotion in classes.names:
        if f"votes_{emotion}" in table:
            frame[f"votes_{emotion}"] = _int_column(table, f"votes_{emotion}", name, lines)
    handled = {path_column, label_column, "agree", "disagree", "image_id", "source", "split"}
    for column in table.columns:  # the user's own metadata travels along as text
        if column not in handled and column not in frame:
            frame[column] = table[column]
    return keep_loadable(frame, report, workers), report, classes


def _refuse_repeats(keys: pd.Series, shown: pd.Series, what: str, file_name: str, lines: list[int]) -> None:
    """One line naming the first repeated key (compared as `keys`, shown as the file has it)."""
    repeated = keys.duplicated()
    if repeated.any():
        second = int(repeated.to_numpy().nonzero()[0][0])
        first = int((keys == keys.iloc[second]).to_numpy().nonzero()[0][0])
        raise DataImportError(f"{file_name} line {lines[second]}: {what} {shown.iloc[second]!r} "
                              f"is also on line {lines[first]}")


def _resolve(path: str, base: Path) -> str:
    candidate = Path(path)
    return os.path.normpath(candidate) if candidate.is_absolute() else str((base / candidate).resolve())


def _label_at(value: str, file_name: str, line: int, classes: ClassSet,
              aliases: Mapping[str, str] | None) -> str:
    try:
        return class_of(value, classes, aliases)
    except ValueError as err:
        raise DataImportError(f"{file_name} line {line}: {err}") from None


def _split_at(value: str, file_name: str, line: int) -> str:
    if value.lower() not in ("train", "dev", "test"):
        raise DataImportError(f"{file_name} line {line}: split {value!r} must be train, dev or test")
    return value.lower()


def _int_column(table: pd.DataFrame, column: str, file_name: str, lines: list[int]) -> pd.Series:
    if column not in table:
        return pd.Series(pd.NA, index=table.index, dtype="Int64")
    values = pd.to_numeric(table[column].replace("", None), errors="coerce")
    bad = values.isna() & (table[column] != "")
    bad |= values.notna() & ((values < 0) | (values % 1 != 0))
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataImportError(f"{file_name} line {lines[row]}: {column} {table[column].iloc[row]!r} "
                              "is not a non-negative whole number")
    return values.astype("Int64")


def _default_ids(paths: pd.Series) -> list[str]:
    stems = paths.map(lambda p: Path(p).with_suffix("").as_posix().lstrip("./"))
    return unique_ids(stems, paths)


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


def parallel_map(function: Callable, items: Iterable, *, total: int, desc: str, unit: str,
                 workers: int | None) -> list:
    """function(item) for every item, in order, on threads (file reads and image decoding
    release the GIL), with a progress bar. An exception in any call is raised here."""
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 2)) as pool:
        # disable=None: no bar when stderr is not a terminal (logs, pipes), so an error stays one line there
        return list(tqdm(pool.map(function, items), total=total, desc=desc, unit=unit, leave=False, disable=None))


def keep_loadable(frame: pd.DataFrame, report: ImportReport, workers: int | None,
                  check: Callable[[str], str | None] = check_image) -> pd.DataFrame:
    """The rows whose image is usable; the others are counted per label and reason."""
    reasons = parallel_map(check, frame["path"], total=len(frame), desc="checking images", unit="img",
                           workers=workers)
    for label, reason in zip(frame["label"], reasons):
        if reason:
            report.skipped[label][reason] += 1
        else:
            report.kept[label] += 1
    kept = frame[[reason is None for reason in reasons]].reset_index(drop=True)
    for column in ("agree", "disagree"):
        kept[column] = kept[column].astype("Int64")
    return kept


# ---- shared: class names, text and JSON files with line numbers ---------------------------

def class_of(name: str, classes: ClassSet, aliases: Mapping[str, str] | None = None) -> str:
    """A name as written in a dataset ('Sad ', 'ANGER') as a class id of `classes`: an id, a
    display name or an alias (aliases map lower-case names to ids). ValueError lists the valid."""
    key = str(name).strip().lower()
    if aliases and key in aliases:
        return aliases[key]
    return classes.parse(name)


def read_text(path: Path, shown: str) -> str:
    """A text file's content (UTF-8, a BOM dropped); `shown` names it in errors."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataImportError(f"{shown}: file not found") from None
    except UnicodeDecodeError as err:
        raise DataImportError(f"{shown}: not UTF-8 text (byte {err.start})") from None


def text_lines(path: Path, shown: str) -> list[tuple[int, str]]:
    """(line number, stripped line) of every non-blank line; CRLF and CR end lines too."""
    lines = re.split("\r\n|\r|\n", read_text(path, shown))
    return [(number, line.strip()) for number, line in enumerate(lines, start=1) if line.strip()]


def ground_truth_table(root: Path, name: str = "ground_truth.txt", images: str = "images"
                       ) -> tuple[tuple[int, str], list[tuple[int, str]]]:
    """The header line and the data lines of an LDL/Emotion6-style release (root/name beside
    root/images); one line for a missing folder, file or header."""
    if not root.is_dir():
        raise DataImportError(f"{root}: folder not found")
    lines = text_lines(root / name, name)
    if not lines:
        raise DataImportError(f"{name}: empty file, no header")
    if not (root / images).is_dir():
        raise DataImportError(f"{root / images}: image folder not found")
    return lines[0], lines[1:]


def load_json(text: str, shown: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataImportError(f"{shown} line {err.lineno}: not JSON ({err.msg})") from None


def line_finder(text: str) -> Callable[[int], int]:
    """Character offset -> 1-based line number, for a text searched many times."""
    newlines = [match.start() for match in re.finditer("\n", text)]
    return lambda offset: bisect.bisect_left(newlines, offset) + 1


def json_array_items(text: str, start: int) -> list[tuple[int, object]]:
    """(offset, value) of every element of the JSON array whose '[' is at text[start];
    the text must be valid JSON (load_json first): the offsets give errors their line."""
    decoder, items = json.JSONDecoder(), []
    at = _skip_space(text, start + 1)
    while text[at] != "]":
        value, end = decoder.raw_decode(text, at)
        items.append((at, value))
        at = _skip_space(text, end)
        if text[at] == ",":
            at = _skip_space(text, at + 1)
    return items


def read_json_list(path: Path, shown: str) -> list[tuple[int, object]]:
    """(line, entry) of every entry of a file holding one JSON list."""
    text = read_text(path, shown)
    if not isinstance(load_json(text, shown), list):
        raise DataImportError(f"{shown} line 1: expected a JSON list of entries")
    line_of = line_finder(text)
    return [(line_of(offset), value) for offset, value in json_array_items(text, _skip_space(text, 0))]


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at


def ordered_columns(frame: pd.DataFrame) -> list[str]:
    extra = [c for c in frame.columns if c not in MANIFEST_COLUMNS]
    return [c for c in MANIFEST_COLUMNS if c in frame.columns] + extra

