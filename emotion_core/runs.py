"""Reading run dirs: what the dashboard shows comes from these files."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emotion_core.dataset_attributes import lists_as_lists
from emotion_core.votes import with_votes

# The files emotion_core.evaluation writes (the same names there; a test checks). Named here, not
# imported from there, so that reading a run does not import torch: the dashboard's pages that never
# run the model start seconds sooner.
PREDICTIONS_FILE, CAMS_FILE, METRICS_FILE = "predictions.parquet", "cams.npy", "metrics.json"
CHECKPOINT_FILE, RUN_FILE = "checkpoint.pt", "run.json"
EMBEDDINGS_FILE = "embeddings.npy"  # (N, d), row i for predictions.parquet's row with cam_index i
IMPORTED_PREDICTIONS = "imported predictions"  # run.json's "source" of a run made from another framework's outputs


@dataclass(frozen=True)
class RunInfo:
    name: str
    path: Path
    complete: bool   # evaluated (metrics.json exists), and either a model or imported predictions
    is_demo: bool
    has_model: bool = True  # checkpoint.pt exists: the live page and the inspector can run it
    imported: bool = False  # made from another framework's predictions (run.json's source says so)


def list_runs(runs_root: str | os.PathLike) -> list[RunInfo]:
    """Every run dir under runs_root, demo and real alike: a folder with checkpoint.pt, or with
    metrics.json and no checkpoint. The latter is imported predictions when its run.json says so;
    otherwise its checkpoint was deleted and it is listed as incomplete (not as an import)."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    runs = []
    for path in sorted(p for p in root.iterdir() if (p / CHECKPOINT_FILE).exists() or (p / METRICS_FILE).exists()):
        has_model = (path / CHECKPOINT_FILE).exists()
        imported = not has_model and is_imported_predictions(path)
        evaluated = (path / METRICS_FILE).exists()
        runs.append(RunInfo(path.name, path, evaluated and (has_model or imported), (path / "demo.json").exists(),
                            has_model, imported))
    return runs


def is_imported_predictions(run_dir: str | os.PathLike) -> bool:
    """run.json's source is "imported predictions" (training.import_predictions wrote it)."""
    try:
        return read_json(Path(run_dir) / RUN_FILE).get("source") == IMPORTED_PREDICTIONS
    except (ValueError, OSError, AttributeError):  # an unreadable or odd run.json: not an import
        return False


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def load_metrics(run_dir: str | os.PathLike) -> dict:
    return read_json(Path(run_dir) / METRICS_FILE)


def has_probabilities(metrics: dict) -> bool:
    """Whether the run's p_<class> columns are its model's probabilities: False only for a run imported with
    predicted labels alone (metrics.json's has_probabilities: false), whose p_ are one-hot stand-ins."""
    return metrics.get("has_probabilities", True) is not False


def load_predictions(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The predictions, with vote columns present and agreement levels read from the counts
    (a run from another tool may lack agree or disagree; an older EmoLens called 0/0 unanimous), and
    list columns (EmoSet's attr_object) as the Python lists that were written."""
    table = with_votes(pd.read_parquet(Path(run_dir) / PREDICTIONS_FILE))
    lists_as_lists(table)
    return table


def load_cams(run_dir: str | os.PathLike) -> np.ndarray:
    """(N, 2, h, w) float16, memory-mapped: [predicted class, true class] per prediction row."""
    return np.load(Path(run_dir) / CAMS_FILE, mmap_mode="r")


def has_cams(run_dir: str | os.PathLike) -> bool:
    """Whether the run holds Grad-CAM maps (an imported run may not)."""
    return (Path(run_dir) / CAMS_FILE).exists()


def load_embeddings(run_dir: str | os.PathLike) -> np.ndarray | None:
    """(N, d), memory-mapped, row i for predictions row cam_index i: float16 from training.evaluate, float32
    from training.import_predictions; None when the run has none (evaluated before embeddings existed)."""
    path = Path(run_dir) / EMBEDDINGS_FILE
    return np.load(path, mmap_mode="r") if path.exists() else None


def load_history(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    path = Path(run_dir) / "history.csv"
    return pd.read_csv(path) if path.exists() else None


def demo_note(run_dir: str | os.PathLike) -> str | None:
    """The synthetic-data note of a demo run, None for a real run."""
    return read_json(Path(run_dir) / "demo.json").get("note")



def predictions_of_split(predictions: pd.DataFrame, split: str, message: Callable[[str], str]) -> pd.DataFrame:
    """The split's prediction rows; when there are none, a one-line ValueError of message(present), present
    naming the splits the table holds (or saying it has no split column): each caller words it its own way."""
    rows = predictions[predictions["split"] == split] if "split" in predictions else predictions.iloc[:0]
    if rows.empty:
        present = sorted(predictions["split"].dropna().astype(str).unique()) if "split" in predictions else []
        raise ValueError(message(", ".join(present) if present else f"none ({PREDICTIONS_FILE} has no split column)"))
    return rows
