"""Evaluate a checkpoint on dataset splits: predictions, Grad-CAM maps and metrics."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
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
    if not loaded:  # an empty shard (more processes than images)
        return _predictions_table(rows.iloc[:0], np.empty((0, len(EMOTIONS))), np.empty(0, dtype=np.int64)), \
            np.empty((0, 2, *predictor.cam_shape()), dtype=np.float16)
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


Gather = Callable[[Any], "list[Any] | None"]


def evaluate_run(run_dir: str | os.PathLike, dataset_dir: str | os.PathLike, *, splits: tuple[str, ...] = ("test",),
                 batch_size: int = 32, workers: int = 0, device: str = "cpu", attributes: bool = True,
                 progress: Progress | None = None, shard: tuple[int, int] = (0, 1),
                 gather: Gather | None = None) -> dict | None:
    """Evaluate run_dir/checkpoint.pt; write predictions, CAMs, image attributes and
    metrics, each atomically.

    Under torchrun each process passes shard=(rank, world_size) and a `gather` that
    collects every rank's part on rank 0 (None elsewhere); rank 0 writes and returns
    the metrics, the other ranks return None.
    """
    run_dir = Path(run_dir)
    model, config, _ = load_checkpoint(run_dir / "checkpoint.pt")
    manifest = read_manifest(dataset_dir)
    rows = pd.concat([split_rows(manifest, s) for s in splits], ignore_index=True)
    rows["_position"] = np.arange(len(rows))
    rank, world_size = shard
    predictor = Predictor(model, config.input_size, device)
    table, cams = predict_frame(predictor, rows.iloc[rank::world_size], batch_size=batch_size, workers=workers,
                                progress=progress)
    table["_position"] = rows.set_index("image_id").loc[table["image_id"], "_position"].to_numpy()
    image_attributes = compute_attributes(table, cams) if attributes else None
    parts = gather((table, cams, image_attributes)) if gather else [(table, cams, image_attributes)]
    if parts is None:
        return None
    table, cams, image_attributes = _merge(parts)
    metrics = {
        "dataset": str(Path(dataset_dir).resolve()),
        "splits": {s: evaluation_metrics(table[table["split"] == s]) for s in splits},
        "split_counts": split_counts(manifest),
        "skipped_unreadable": int(len(rows) - len(table)),
        "cam_shape": list(cams.shape[2:]),
    }
    if image_attributes is not None:
        write_attributes(run_dir, image_attributes)
    else:
        (run_dir / ATTRIBUTES_FILE).unlink(missing_ok=True)  # stale: belonged to the previous evaluation
    shutil.rmtree(run_dir / "cache", ignore_errors=True)  # overlays of the previous evaluation
    write_npy(run_dir / CAMS_FILE, cams)
    write_parquet(run_dir / PREDICTIONS_FILE, table)
    write_json(run_dir / METRICS_FILE, metrics)  # last: its presence marks a complete evaluation
    return metrics


def _merge(parts: list) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame | None]:
    """Shards back into the manifest's row order; cam_index renumbered to match."""
    table = pd.concat([p[0] for p in parts], ignore_index=True)
    cams = np.concatenate([p[1] for p in parts])
    order = np.argsort(table["_position"].to_numpy(), kind="stable")
    table = table.iloc[order].drop(columns="_position").reset_index(drop=True)
    table["cam_index"] = np.arange(len(table), dtype="int64")
    attributes = None
    if parts[0][2] is not None:
        attributes = pd.concat([p[2] for p in parts], ignore_index=True).iloc[order].reset_index(drop=True)
    return table, cams[order], attributes
