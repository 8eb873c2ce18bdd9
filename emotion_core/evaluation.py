"""Evaluate a checkpoint on dataset splits: predictions, Grad-CAM maps and metrics."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from emotion_core.attributes import ATTRIBUTES_FILE, compute_attributes, write_attributes
from emotion_core.dataset import ImageDataset, read_manifest, split_rows
from emotion_core.fileio import write_json, write_npy, write_parquet
from emotion_core.labels import EMOTIONS
from emotion_core.metrics import evaluation_metrics
from emotion_core.model import load_checkpoint
from emotion_core.predict import Predictor
from emotion_core.transforms import eval_transform
from emotion_core.votes import agreement, agreement_level

Progress = Callable[[float, str], None]
PASSTHROUGH = ("source", "demo_trait") + tuple(f"votes_{e}" for e in EMOTIONS)
PREDICTIONS_FILE, CAMS_FILE, METRICS_FILE = "predictions.parquet", "cams.npy", "metrics.json"


def predict_frame(predictor: Predictor, rows: pd.DataFrame, *, batch_size: int = 32, workers: int = 0,
                  progress: Progress | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Predict every row; returns the predictions table and the CAMs (N, 2, h, w)."""
    dataset = ImageDataset(rows, eval_transform(predictor.input_size), predictor.input_size)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                        pin_memory=predictor.device.type == "cuda")
    probabilities, predicted, cams, index, loaded = [], [], [], [], []
    bar = tqdm(total=len(dataset), desc="evaluating", unit="img")
    for images, labels, rows_idx, ok in loader:
        result = predictor.evaluate_batch(images, labels)
        probabilities.append(result.probabilities)
        predicted.append(result.predicted)
        cams.append(result.cams)
        index.append(rows_idx.numpy())
        loaded.append(ok.numpy())
        bar.update(len(labels))
        if progress:
            progress(bar.n / len(dataset), f"evaluated {bar.n}/{len(dataset)} images")
    bar.close()
    keep = np.concatenate(loaded)
    order = np.concatenate(index)[keep]
    table = _predictions_table(rows.iloc[order].reset_index(drop=True),
                               np.concatenate(probabilities)[keep], np.concatenate(predicted)[keep])
    return table, np.concatenate(cams)[keep]


def _predictions_table(rows: pd.DataFrame, probabilities: np.ndarray, predicted: np.ndarray) -> pd.DataFrame:
    table = rows[["image_id", "path", "split", "label", "label_idx", "agree", "disagree"]].copy()
    table["pred_idx"] = predicted.astype("int64")
    table["pred"] = [EMOTIONS[i] for i in predicted]
    table["confidence"] = probabilities.max(axis=1)
    table["correct"] = table["pred_idx"] == table["label_idx"]
    for i, emotion in enumerate(EMOTIONS):
        table[f"p_{emotion}"] = probabilities[:, i]
    table["agreement"] = agreement(table["agree"], table["disagree"])
    table["agreement_level"] = agreement_level(table["agree"], table["disagree"])
    for column in PASSTHROUGH:
        if column in rows:
            table[column] = rows[column].to_numpy()
    table["cam_index"] = np.arange(len(table), dtype="int64")
    return table


def split_counts(manifest: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Images per class per split, for the paper-style table."""
    counts = manifest.groupby(["label", "split"]).size()
    return {e: {s: int(counts.get((e, s), 0)) for s in ("train", "dev", "test")} for e in EMOTIONS}


def evaluate_run(run_dir: str | os.PathLike, dataset_dir: str | os.PathLike, *, splits: tuple[str, ...] = ("test",),
                 batch_size: int = 32, workers: int = 0, device: str = "cpu", attributes: bool = True,
                 progress: Progress | None = None) -> dict:
    """Evaluate run_dir/checkpoint.pt; write predictions, CAMs, image attributes and
    metrics, each atomically."""
    run_dir = Path(run_dir)
    model, config, _ = load_checkpoint(run_dir / "checkpoint.pt")
    manifest = read_manifest(dataset_dir)
    rows = pd.concat([split_rows(manifest, s) for s in splits], ignore_index=True)
    predictor = Predictor(model, config.input_size, device)
    table, cams = predict_frame(predictor, rows, batch_size=batch_size, workers=workers, progress=progress)
    metrics = {
        "dataset": str(Path(dataset_dir).resolve()),
        "splits": {s: evaluation_metrics(table[table["split"] == s]) for s in splits},
        "split_counts": split_counts(manifest),
        "skipped_unreadable": int(len(rows) - len(table)),
        "cam_shape": list(cams.shape[2:]),
    }
    if attributes:
        write_attributes(run_dir, compute_attributes(table, cams))
    else:
        (run_dir / ATTRIBUTES_FILE).unlink(missing_ok=True)  # stale: belonged to the previous evaluation
    shutil.rmtree(run_dir / "cache", ignore_errors=True)  # overlays of the previous evaluation
    write_npy(run_dir / CAMS_FILE, cams)
    write_parquet(run_dir / PREDICTIONS_FILE, table)
    write_json(run_dir / METRICS_FILE, metrics)  # last: its presence marks a complete evaluation
    return metrics
