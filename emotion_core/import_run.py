"""Predictions from any framework -> a run dir of the same contract as an evaluated run.

The input is a table (CSV or Parquet) with an image key (`image_id`, else `path`) and either
one probability column per class (`p_<class>`, the class id or its display name) or a
predicted label (`pred`, `prediction`, ...: class ids or display names; `pred_idx`: indices),
plus optional Grad-CAM maps (.npy: (N, h, w) for the predicted class or (N, 2, h, w) for the
predicted and the true class) and embeddings (.npy, (N, d)), row i for the table's row i.

Rows that match no image, share an image with another row, have probabilities that do not
sum to 1 or are missing, or name an unknown class are counted; the caller refuses the file
or skips those rows. The run dir gets no checkpoint: there is no model to run.

p_ columns that are no class of the dataset (p_max, p_entropy, ...) are ignored with a note,
unless they look like another class set: no p_ column names a class of the dataset, or the
rows sum to 1 only with those columns added (the file's model knows classes the dataset lacks).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from emotion_core.attributes import ATTRIBUTES_FILE, compute_attributes, write_attributes
from emotion_core.dataset import read_dataset
from emotion_core.evaluation import metrics_payload, predictions_table
from emotion_core.fileio import file_sha256, first_line, write_json, write_npy, write_parquet
from emotion_core.labels import ClassSet
from emotion_core.runs import CAMS_FILE, EMBEDDINGS_FILE, IMPORTED_PREDICTIONS, METRICS_FILE, PREDICTIONS_FILE, RUN_FILE

SOURCE = IMPORTED_PREDICTIONS
ON_BAD = ("refuse", "skip")
SUM_TOLERANCE = 1e-3
KEY_COLUMNS = ("image_id", "path")
LABEL_COLUMNS = ("pred", "prediction", "predicted", "pred_label", "predicted_label", "label_pred")
INDEX_COLUMNS = ("pred_idx", "prediction_idx", "predicted_idx")
SPLIT_ORDER = ("train", "dev", "test")
# What is wrong with a row, in the order they are reported.
PROBLEMS = {
    "unmatched": "matching no image of the dataset",
    "duplicate": "naming an image that another row names too",
    "bad_sum": f"with probabilities not summing to 1 (±{SUM_TOLERANCE:g}; --renormalise divides by the sum)",
    "invalid": "with missing, negative or non-numeric probabilities",
    "unknown_class": "with a class not in the dataset",
}


class PredictionsImportError(ValueError):
    """A predictions file (or maps, embeddings, run dir) that cannot be imported; one line for the user."""


@dataclass
class ImportedRun:
    table: pd.DataFrame                  # predictions.parquet's rows
    cams: np.ndarray | None              # (N, 2, h, w) float16 for the table's rows
    embeddings: np.ndarray | None        # (N, d) float32 for the table's rows
    report: dict = field(default_factory=dict)


@dataclass
class Scores:
    """The file's predictions before the dataset is consulted: one row per file row."""
    probabilities: np.ndarray            # (rows, classes) float64; one-hot where only labels were given
    problems: dict[str, np.ndarray]      # problem -> (rows,) bool
    notes: list[str]
    has_probabilities: bool
    label_values: list | None = None     # the label column's value per row (label-only files)


# ---- reading -------------------------------------------------------------------------------

def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """A CSV (also .tsv / .txt with tabs) or Parquet file, keys read as text."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsImportError(f"{path}: no such predictions file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",",
                               dtype={k: str for k in KEY_COLUMNS}, keep_default_na=False, na_values=[""])
    except Exception as err:  # a parser's error: one line
        raise PredictionsImportError(f"{path}: not a readable table ({first_line(err)})") from None
    raise PredictionsImportError(f"{path}: unknown file type {suffix!r}; valid: .csv, .tsv, .parquet")


def read_array(path: str | os.PathLike, what: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise PredictionsImportError(f"{path}: no such {what} file") from None
    except Exception as err:
        raise PredictionsImportError(f"{path}: not a .npy array ({first_line(err)})") from None


# ---- the file's predictions ----------------------------------------------------------------

def probability_columns(columns: list[str], classes: ClassSet) -> tuple[dict[str, str], list[str]]:
    """(class -> its column, columns that look like probabilities of no class). A class's column is
    p_<class>, the class id or its display name (any case); p_<other> columns are the unknown ones."""
    by_lower = {str(c).strip().lower(): c for c in columns}
    found = {}
    for name, display in zip(classes.names, classes.display):
        for candidate in (f"p_{name}", name, f"p_{display.strip().lower()}", display.strip().lower()):
            if candidate in by_lower:
                found[name] = by_lower[candidate]
                break
    used = set(found.values())
    unknown = [c for c in columns if str(c).strip().lower().startswith("p_") and c not in used]
    return found, unknown


def scores_from_probabilities(frame: pd.DataFrame, columns: list[str], *, renormalise: bool) -> Scores:
    values = np.array(frame[columns].apply(pd.to_numeric, errors="coerce"), dtype=np.float64)  # (rows, classes), a copy
    invalid = ~np.isfinite(values).all(axis=1) | (np.nan_to_num(values, nan=0.0) < 0).any(axis=1)
    sums = np.where(invalid, np.nan, values.sum(axis=1))
    off = ~invalid & (np.abs(sums - 1.0) > SUM_TOLERANCE)
    notes = []
    if renormalise:
        fixable = off & (sums > 0)
        values[fixable] /= sums[fixable, None]
        if fixable.any():
            notes.append(f"{int(fixable.sum())} rows renormalised to sum to 1")
        off = off & ~fixable
    values[invalid] = 0.0
    problems = {"bad_sum": off, "invalid": invalid}
    return Scores(values, problems, notes, has_probabilities=True)


def scores_from_labels(frame: pd.DataFrame, column: str, classes: ClassSet) -> Scores:
    """One-hot probabilities from a predicted-label (or index) column."""
    index = np.full(len(frame), -1, dtype=np.int64)
    values = frame[column].tolist()
    for row, value in enumerate(tqdm(values, desc="reading labels", unit="row", disable=len(values) < 50_000)):
        index[row] = _class_index(value, classes, by_position=column in INDEX_COLUMNS)
    unknown = index < 0
    probabilities = np.zeros((len(frame), len(classes)))
    probabilities[np.flatnonzero(~unknown), index[~unknown]] = 1.0
    note = f"predicted labels only (column {column!r}): probabilities are one-hot, confidence is 1"
    return Scores(probabilities, {"unknown_class": unknown}, [note], has_probabilities=False, label_values=values)


def _class_index(value, classes: ClassSet, *, by_position: bool) -> int:
    if _missing(value):
        return -1
    if by_position:
        try:
            position = int(value)
        except (TypeError, ValueError):
            return -1
        return position if 0 <= position < len(classes) and position == float(value) else -1
    try:
        return classes.index[classes.parse(str(value))]
    except ValueError:
        return -1


def file_scores(frame: pd.DataFrame, classes: ClassSet, *, renormalise: bool) -> Scores:
    """The file's probabilities per row, from its probability columns or else its label column."""
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    found, unknown = probability_columns(columns, classes)
    refuse_other_class_set(frame, found, unknown, classes)
    if found and len(found) < len(classes):
        missing = [n for n in classes.names if n not in found]
        raise PredictionsImportError(f"probability columns for {len(found)} of {len(classes)} classes; missing: "
                                     f"{', '.join(missing)} (name them p_<class> or by the class)")
    if found:
        scores = scores_from_probabilities(frame, [found[n] for n in classes.names], renormalise=renormalise)
        ignored = [c for c in LABEL_COLUMNS + INDEX_COLUMNS if c in columns]
        if ignored:
            scores.notes.append(f"column {ignored[0]!r} ignored: the predicted class is the most probable one")
    else:
        label = next((c for c in LABEL_COLUMNS + INDEX_COLUMNS if c in columns), None)
        if label is None:
            raise PredictionsImportError(
                f"no probability columns (p_<class> or the class names: {', '.join(classes.names)}) and no predicted "
                f"label column ({', '.join(LABEL_COLUMNS + INDEX_COLUMNS)}); columns: {', '.join(columns[:12])}")
        scores = scores_from_labels(frame, label, classes)
    if unknown:
        scores.notes.append(f"{len(unknown)} p_ column(s) that are no class of the dataset ignored: "
                            f"{', '.join(unknown[:8])}{' ...' if len(unknown) > 8 else ''}")
    return scores


def refuse_other_class_set(frame: pd.DataFrame, found: dict[str, str], unknown: list[str], classes: ClassSet) -> None:
    """Raise when the p_ columns that are no class look like the probabilities of another class set:
    none of the p_ columns names a class (two or more of them), or rows that do not sum to 1 over the
    dataset's classes do with those columns added. A lone extra column (p_max) is only ignored."""
    if not unknown:
        return
    named = f"{', '.join(unknown[:6])}{' ...' if len(unknown) > 6 else ''}"
    if not found and len(unknown) > 1:
        raise PredictionsImportError(f"no p_ column names a class of the dataset ({named}); the dataset's classes: "
                                     f"{', '.join(classes.names)}; was the file made for another class set?")
    if not found:
        return
    numbers = frame[list(found.values()) + unknown].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    known_sum, all_sum = numbers[:, :len(found)].sum(axis=1), numbers.sum(axis=1)
    completes = (np.abs(known_sum - 1.0) > SUM_TOLERANCE) & (np.abs(all_sum - 1.0) <= SUM_TOLERANCE)
    if completes.any():
        raise PredictionsImportError(
            f"{rows_text(int(completes.sum()))} sum to 1 only with {named} added: the file's model has classes "
            f"the dataset lacks ({', '.join(classes.names)}); drop those classes and renormalise, or use a "
            f"dataset of that class set")


# ---- matching rows to the dataset's images --------------------------------------------------

def match_images(frame: pd.DataFrame, manifest: pd.DataFrame, dataset_dir: str | os.PathLike) -> tuple[np.ndarray, str]:
    """(manifest position of each file row, -1 where none; the key column used). Paths are
    compared absolute and normalised, a relative one taken relative to the dataset dir."""
    key = next((c for c in KEY_COLUMNS if c in frame.columns), None)
    if key is None:
        raise PredictionsImportError(f"no image key column (image_id or path); columns: "
                                     f"{', '.join(map(str, frame.columns[:12]))}")
    if key == "image_id":
        wanted, known = frame[key].tolist(), manifest["image_id"].astype(str).tolist()
    else:
        wanted = [_normal_path(p, dataset_dir) for p in frame[key].tolist()]
        # read_dataset has joined the manifest's paths to the dataset dir already: joining again
        # would double a relative dataset dir ("ds/ds/images/...").
        known = [os.path.normpath(os.path.abspath(p)) for p in manifest["path"].tolist()]
    position_of = {k: i for i, k in reversed(list(enumerate(known)))}  # the first row of a key listed twice
    keys = [None if _missing(k) else str(k).strip() for k in wanted]
    return np.array([position_of.get(k, -1) if k else -1 for k in keys], dtype=np.int64), key


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _normal_path(value, dataset_dir: str | os.PathLike):
    if not isinstance(value, str) or not value.strip():
        return None
    path = value.strip()
    return os.path.normpath(os.path.abspath(path if os.path.isabs(path) else os.path.join(dataset_dir, path)))


def duplicate_rows(positions: np.ndarray) -> np.ndarray:
    """Rows whose image another row also names: all of them (which one is right is unknown)."""
    matched = positions >= 0
    counts = np.bincount(positions[matched], minlength=1) if matched.any() else np.zeros(1, dtype=np.int64)
    duplicate = np.zeros(len(positions), dtype=bool)
    duplicate[matched] = counts[positions[matched]] > 1
    return duplicate


# ---- maps and embeddings -------------------------------------------------------------------

def check_cams(cams: np.ndarray, rows: int, path) -> None:
    if cams.ndim == 4 and cams.shape[1] in (1, 2):
        pass
    elif cams.ndim != 3:
        raise PredictionsImportError(f"{path}: maps of shape {cams.shape}; expected (N, h, w) for the predicted "
                                     f"class or (N, 2, h, w) for the predicted and the true class")
    if min(cams.shape[-2:]) < 1:
        raise PredictionsImportError(f"{path}: maps of shape {cams.shape} hold no pixels; each map needs h, w >= 1")
    if len(cams) != rows:
        raise PredictionsImportError(f"{path}: {len(cams)} maps for {rows} rows of the predictions file "
                                     "(one map per row, in the file's order)")


def run_cams(cams: np.ndarray, keep: np.ndarray, predicted: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, bool]:
    """(N, 2, h, w) float16, each map clipped at 0 and scaled to max 1 (as EmoLens' Grad-CAM); with
    only the predicted class's maps, the true class's is the same map where the prediction is right
    and empty elsewhere. Also whether true-class maps were given."""
    chosen = np.asarray(cams[keep], dtype=np.float32)
    chosen = chosen.reshape(len(chosen), -1, *chosen.shape[-2:])  # (N, 1 or 2, h, w)
    chosen = np.nan_to_num(chosen, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    peak = chosen.reshape(*chosen.shape[:2], -1).max(axis=2)
    chosen = chosen / np.where(peak > 0, peak, 1.0)[:, :, None, None]
    with_true = chosen.shape[1] == 2
    if not with_true:
        true_maps = np.where((predicted == labels)[:, None, None], chosen[:, 0], 0.0)
        chosen = np.stack([chosen[:, 0], true_maps], axis=1)
    return chosen.astype(np.float16), with_true


def check_embeddings(embeddings: np.ndarray, rows: int, path) -> None:
    if embeddings.ndim != 2:
        raise PredictionsImportError(f"{path}: embeddings of shape {embeddings.shape}; expected (N, d)")
    if len(embeddings) != rows:
        raise PredictionsImportError(f"{path}: {len(embeddings)} embeddings for {rows} rows of the predictions "
                                     "file (one per row, in the file's order)")
    if not np.issubdtype(embeddings.dtype, np.number):
        raise PredictionsImportError(f"{path}: embeddings of dtype {embeddings.dtype}; expected numbers")


# ---- the import ----------------------------------------------------------------------------

def problem_report(problems: dict[str, np.ndarray], frame: pd.DataFrame, key: str,
                   label_values: list | None = None) -> dict[str, dict]:
    """problem -> {"rows": count, "examples": first three keys}, for the problems that occur; an
    unknown class also gets "classes": {offending value: rows}, most frequent first."""
    report = {}
    for name in PROBLEMS:
        mask = problems.get(name)
        if mask is not None and mask.any():
            examples = list(dict.fromkeys(str(k) for k in frame[key].to_numpy()[mask]))[:3]
            report[name] = {"rows": int(mask.sum()), "examples": examples}
            if name == "unknown_class" and label_values is not None:
                offending = pd.Series([_shown_value(v) for v, bad in zip(label_values, mask) if bad])
                report[name]["classes"] = {str(v): int(n) for v, n in offending.value_counts(sort=True).items()}
    return report


def _shown_value(value) -> str:
    return "(missing)" if _missing(value) else str(value).strip()


def problem_text(name: str, problem: dict) -> str:
    """'2 rows with a class not in the dataset: 'neutral' (1), 'happy' (1)' or '1 row ... (e.g. 'x')'."""
    counts = problem.get("classes")
    if counts:
        shown = ", ".join(f"{value!r} ({rows})" for value, rows in list(counts.items())[:6])
        more = f", {len(counts) - 6} more" if len(counts) > 6 else ""
        return f"{rows_text(problem['rows'])} {PROBLEMS[name]}: {shown}{more}"
    return f"{rows_text(problem['rows'])} {PROBLEMS[name]} (e.g. {problem['examples'][0]!r})"


def describe_problems(report: dict[str, dict]) -> str:
    """'1 row matching no image of the dataset (e.g. 'x'); 2 rows ...'."""
    return "; ".join(problem_text(name, p) for name, p in report.items())


def rows_text(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


def build_import(frame: pd.DataFrame, manifest: pd.DataFrame, classes: ClassSet, dataset_dir: str | os.PathLike, *,
                 cams: np.ndarray | None = None, embeddings: np.ndarray | None = None, renormalise: bool = False,
                 on_bad: str = "refuse", source: str = "the predictions file") -> ImportedRun:
    """The run's table, maps and embeddings from a predictions table; raises on bad rows with
    on_bad='refuse', drops them with 'skip'."""
    if on_bad not in ON_BAD:
        raise ValueError(f"on_bad must be one of {', '.join(ON_BAD)}, not {on_bad!r}")
    if frame.empty:
        raise PredictionsImportError(f"{source}: no rows")
    scores = file_scores(frame, classes, renormalise=renormalise)
    positions, key = match_images(frame, manifest, dataset_dir)
    problems = {"unmatched": positions < 0, "duplicate": duplicate_rows(positions), **scores.problems}
    report = problem_report(problems, frame, key, scores.label_values)
    bad = np.logical_or.reduce(list(problems.values()))
    if report and on_bad == "refuse":
        raise PredictionsImportError(f"{source}: {describe_problems(report)}; fix them or pass --on-bad skip")
    keep = np.flatnonzero(~bad)
    if not len(keep):
        raise PredictionsImportError(f"{source}: no usable rows ({describe_problems(report)})")
    rows = manifest.iloc[positions[keep]].reset_index(drop=True)
    probabilities = scores.probabilities[keep]
    predicted = probabilities.argmax(axis=1)
    table = predictions_table(rows, probabilities.astype(np.float32), predicted, classes)
    order = np.argsort(_split_rank(table["split"]), kind="stable")  # train, dev, test as evaluation writes them
    table = table.iloc[order].reset_index(drop=True)
    table["cam_index"] = np.arange(len(table), dtype="int64")
    keep, predicted = keep[order], predicted[order]
    run_maps, with_true = (run_cams(cams, keep, predicted, table["label_idx"].to_numpy())
                           if cams is not None else (None, False))
    run_embeddings = np.asarray(embeddings[keep], dtype=np.float32) if embeddings is not None else None
    summary = {"rows_in_file": int(len(frame)), "rows_imported": int(len(keep)), "key": key,
               "skipped": {name: p["rows"] for name, p in report.items()}, "problems": report,
               "notes": scores.notes, "has_probabilities": scores.has_probabilities,
               "cam_classes": (["predicted", "true"] if with_true else ["predicted"]) if cams is not None else []}
    return ImportedRun(table, run_maps, run_embeddings, summary)


def _split_rank(splits: pd.Series) -> np.ndarray:
    return splits.map({s: i for i, s in enumerate(SPLIT_ORDER)}).fillna(len(SPLIT_ORDER)).to_numpy()


def run_metrics(imported: ImportedRun, manifest: pd.DataFrame, classes: ClassSet, dataset_dir) -> dict:
    """metrics.json as evaluation writes it, plus where the run came from."""
    table = imported.table
    return metrics_payload(table, list(pd.unique(table["split"])), manifest, classes, dataset_dir,
                           skipped_unreadable=0,
                           cam_shape=list(imported.cams.shape[2:]) if imported.cams is not None else None,
                           source=SOURCE, has_probabilities=imported.report["has_probabilities"],
                           cam_classes=imported.report["cam_classes"])


def refuse_existing_run(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise PredictionsImportError(f"--out {out} is a file, not a folder; choose a run dir")
    if (out / "checkpoint.pt").exists():
        raise PredictionsImportError(f"{out} holds a model's checkpoint.pt; import the predictions into another run dir")
    if (out / METRICS_FILE).exists() and not overwrite:
        raise PredictionsImportError(f"{out} already holds a run ({METRICS_FILE}); choose another --out or pass "
                                     "--overwrite")


def write_run(out: Path, imported: ImportedRun, metrics: dict, run_meta: dict, attributes: pd.DataFrame | None) -> None:
    """Every file atomically, metrics.json removed first and written last: a reader never sees a mix."""
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS_FILE).unlink(missing_ok=True)
    shutil.rmtree(out / "cache", ignore_errors=True)  # overlays of an earlier import
    for name, value in ((CAMS_FILE, imported.cams), (EMBEDDINGS_FILE, imported.embeddings)):
        if value is None:
            (out / name).unlink(missing_ok=True)
        else:
            write_npy(out / name, value)
    if attributes is None:
        (out / ATTRIBUTES_FILE).unlink(missing_ok=True)
    else:
        write_attributes(out, attributes)
    write_parquet(out / PREDICTIONS_FILE, imported.table)
    write_json(out / RUN_FILE, run_meta)
    write_json(out / METRICS_FILE, metrics)


def import_predictions(dataset_dir: str | os.PathLike, predictions_file: str | os.PathLike,
                       out_dir: str | os.PathLike, *, cams_file: str | os.PathLike | None = None,
                       embeddings_file: str | os.PathLike | None = None, renormalise: bool = False,
                       on_bad: str = "refuse", attributes: bool = False, overwrite: bool = False) -> dict:
    """Check everything, then write the run dir (nothing is written when something is refused).
    Returns run.json's content (with the import report)."""
    out = Path(out_dir)
    refuse_existing_run(out, overwrite)
    manifest, classes = read_dataset(dataset_dir)
    frame = read_table(predictions_file)
    cams = read_array(cams_file, "Grad-CAM maps") if cams_file else None
    embeddings = read_array(embeddings_file, "embeddings") if embeddings_file else None
    if cams is not None:
        check_cams(cams, len(frame), cams_file)
    if embeddings is not None:
        check_embeddings(embeddings, len(frame), embeddings_file)
    imported = build_import(frame, manifest, classes, dataset_dir, cams=cams, embeddings=embeddings,
                            renormalise=renormalise, on_bad=on_bad, source=str(predictions_file))
    image_attributes = compute_attributes(imported.table, imported.cams) if attributes else None
    meta = {"source": SOURCE, "predictions_file": str(Path(predictions_file).resolve()),
            "predictions_sha256": file_sha256(predictions_file),
            "cams_file": str(Path(cams_file).resolve()) if cams_file else None,
            "embeddings_file": str(Path(embeddings_file).resolve()) if embeddings_file else None,
            "dataset": str(Path(dataset_dir).resolve()), "classes": classes.to_dict(),
            "on_bad": on_bad, "renormalise": renormalise, "import_report": imported.report,
            "imported": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_run(out, imported, run_metrics(imported, manifest, classes, dataset_dir), meta, image_attributes)
    return meta


