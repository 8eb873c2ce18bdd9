"""Evaluate a checkpoint on dataset splits: predictions, Grad-CAM maps, embeddings and metrics."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from emotion_core.attributes import ATTRIBUTES_FILE, PIXEL_COLUMNS, attributes_table, write_attributes
from emotion_core.dataset import ImageDataset, read_dataset, split_rows
from emotion_core.dataset_attributes import dataset_columns
from emotion_core.fileio import write_json, write_npy, write_parquet
from emotion_core.labels import FI_CLASSES, ClassSet
from emotion_core.metrics import evaluation_metrics
from emotion_core.model import checkpoint_classes, load_checkpoint
from emotion_core.predict import Predictor
from emotion_core.transforms import eval_transform
from emotion_core.votes import vote_agreement, vote_levels

Progress = Callable[[float, str], None]
# and votes_<class> for each class of the run, and the dataset attributes (attr_*, valence, arousal)
PASSTHROUGH = ("source", "demo_trait")
PREDICTIONS_FILE, CAMS_FILE, METRICS_FILE = "predictions.parquet", "cams.npy", "metrics.json"
EMBEDDINGS_FILE = "embeddings.npy"
PREFETCH_BATCHES = 4  # batches each loader worker prepares ahead (DataLoader's default is 2)


@dataclass
class FrameResult:
    table: pd.DataFrame                 # one row per readable image (predictions.parquet's columns)
    cams: np.ndarray | None             # (N, 2, h, w) float16, row i for table row i; None: cams=False
    attributes: pd.DataFrame | None     # attributes.parquet's table for the same rows, when asked for
    embeddings: np.ndarray              # (N, d) float16, row i for table row i


def evaluate_frame(predictor: Predictor, rows: pd.DataFrame, *, batch_size: int = 32, workers: int = 0,
                   attributes: bool = False, cams: bool = True, progress: Progress | None = None) -> FrameResult:
    """Predict every row with Grad-CAM and its embedding; with attributes=True also each image's
    automatic attributes, computed by the loader's workers from the image they decode for the model.
    cams=False skips Grad-CAM (FrameResult.cams is None): for probabilities only, as cross-validation
    keeps them; the attributes need the maps.

    Results stay on the predictor's device until the last batch and come back in one
    copy, so a GPU never waits for the host between batches."""
    if attributes and not cams:
        raise ValueError("the image attributes are computed from the Grad-CAM maps: attributes=True needs cams=True")
    loader = _evaluation_loader(predictor, rows, batch_size=batch_size, workers=workers, attributes=attributes)
    probabilities, predicted, cam_parts, embeddings, index, loaded, pixel_rows = [], [], [], [], [], [], []
    bar = tqdm(total=len(rows), desc="evaluating", unit="img")
    for images, labels, rows_idx, ok, *pixels in loader:
        result = predictor.evaluate_batch(images, labels, cams=cams)
        probabilities.append(result.probabilities)
        predicted.append(result.predicted)
        if cams:
            cam_parts.append(result.cams)
        embeddings.append(result.embeddings)
        index.append(rows_idx.numpy())
        loaded.append(ok.numpy())
        pixel_rows.extend(p.numpy() for p in pixels)
        bar.update(len(labels))
        if progress:
            progress(bar.n / len(rows), f"evaluated {bar.n}/{len(rows)} images")
    bar.close()
    if not loaded:  # an empty shard (more processes than images)
        table = predictions_table(rows.iloc[:0], np.empty((0, len(predictor.classes)), dtype=np.float32),
                                   np.empty(0, dtype=np.int64), predictor.classes)  # the dtypes of a full shard
        maps = np.empty((0, 2, *predictor.cam_shape()), dtype=np.float16) if cams else None
        return FrameResult(table, maps, attributes_table([], np.empty((0, len(PIXEL_COLUMNS))), maps)
                           if attributes else None, np.empty((0, predictor.embedding_size()), dtype=np.float16))
    keep = np.concatenate(loaded)
    order = np.concatenate(index)[keep]
    # the one read of the device: (N, classes) float32, (N,) int64, (N, 2, h, w) float16, (N, d) float16
    probabilities, predicted, embeddings = (torch.cat(parts).cpu().numpy()
                                            for parts in (probabilities, predicted, embeddings))
    table = predictions_table(rows.iloc[order].reset_index(drop=True), probabilities[keep], predicted[keep],
                               predictor.classes)
    maps = torch.cat(cam_parts).cpu().numpy()[keep] if cams else None
    image_attributes = None
    if attributes:
        image_attributes = attributes_table(table["image_id"].tolist(), np.concatenate(pixel_rows)[keep], maps)
    return FrameResult(table, maps, image_attributes, embeddings[keep])


def predict_frame(predictor: Predictor, rows: pd.DataFrame, *, batch_size: int = 32, workers: int = 0,
                  progress: Progress | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """evaluate_frame without attributes: the predictions table and the CAMs (N, 2, h, w)."""
    result = evaluate_frame(predictor, rows, batch_size=batch_size, workers=workers, progress=progress)
    return result.table, result.cams


def _evaluation_loader(predictor: Predictor, rows: pd.DataFrame, *, batch_size: int, workers: int,
                       attributes: bool) -> DataLoader:
    """One pass over rows in order. Pinned batches (CUDA) copy to the device without
    blocking; each worker keeps PREFETCH_BATCHES decoded ahead so the device is not left
    waiting. persistent_workers would buy nothing here: the loader is iterated once."""
    dataset = ImageDataset(rows, eval_transform(predictor.input_size), predictor.input_size, attributes=attributes)
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                      pin_memory=predictor.device.type == "cuda",
                      prefetch_factor=PREFETCH_BATCHES if workers else None)


def predictions_table(rows: pd.DataFrame, probabilities: np.ndarray, predicted: np.ndarray,
                       classes: ClassSet) -> pd.DataFrame:
    """predictions.parquet's columns; p_<class> in the class set's order."""
    table = rows[["image_id", "path", "split", "label", "label_idx", "agree", "disagree"]].copy()
    table["pred_idx"] = predicted.astype("int64")
    table["pred"] = [classes.names[i] for i in predicted]
    table["confidence"] = probabilities.max(axis=1)
    table["correct"] = table["pred_idx"] == table["label_idx"]
    for i, emotion in enumerate(classes.names):
        table[f"p_{emotion}"] = probabilities[:, i]
    for column in PASSTHROUGH + tuple(f"votes_{e}" for e in classes.names):
        if column in rows:
            table[column] = rows[column].to_numpy()
    # from the vote distribution where the dataset has one (votes_<class>), else agree/disagree
    table["agreement"] = vote_agreement(table)
    table["agreement_level"] = vote_levels(table)
    for column in dataset_columns(rows.columns):
        table[column] = rows[column].array  # keeps the dtype: nullable strings, lists as objects
    table["cam_index"] = np.arange(len(table), dtype="int64")
    return table


def split_counts(manifest: pd.DataFrame, classes: ClassSet = FI_CLASSES) -> dict[str, dict[str, int]]:
    """Images per class per split, for the paper-style table."""
    counts = manifest.groupby(["label", "split"]).size()
    return {e: {s: int(counts.get((e, s), 0)) for s in ("train", "dev", "test")} for e in classes.names}


def metrics_payload(table: pd.DataFrame, splits, manifest: pd.DataFrame, classes: ClassSet,
                    dataset_dir: str | os.PathLike, **extra: Any) -> dict:
    """metrics.json: the dataset, the run's class set (for every page and export), each split's
    metrics and the dataset's split counts, then the caller's own keys."""
    return {
        "dataset": str(Path(dataset_dir).resolve()),
        "classes": classes.to_dict(),
        "splits": {s: evaluation_metrics(table[table["split"] == s], classes,
                                         has_probabilities=extra.get("has_probabilities", True)) for s in splits},
        "split_counts": split_counts(manifest, classes),
        **extra,
    }


Gather = Callable[[Any], "list[Any] | None"]


def evaluate_run(run_dir: str | os.PathLike, dataset_dir: str | os.PathLike, *, splits: tuple[str, ...] = ("test",),
                 batch_size: int = 32, workers: int = 0, device: str = "cpu", attributes: bool = True,
                 progress: Progress | None = None, shard: tuple[int, int] = (0, 1),
                 gather: Gather | None = None) -> dict | None:
    """Evaluate run_dir/checkpoint.pt; write predictions, CAMs, embeddings, image attributes
    and metrics, each atomically.

    Under torchrun each process passes shard=(rank, world_size) and a `gather` that
    collects every rank's part on rank 0 (None elsewhere); rank 0 writes and returns
    the metrics, the other ranks return None.
    """
    run_dir = Path(run_dir)
    manifest, classes = read_dataset(dataset_dir)
    model, config, payload = load_checkpoint(run_dir / "checkpoint.pt", dataset_classes=classes, dataset=dataset_dir)
    classes = checkpoint_classes(payload)  # the same ids; the run keeps its checkpoint's names and wheel
    rows = pd.concat([split_rows(manifest, s) for s in splits], ignore_index=True)
    rows["_position"] = np.arange(len(rows))
    rank, world_size = shard
    predictor = Predictor(model, config.input_size, device, classes=classes)
    result = evaluate_frame(predictor, rows.iloc[rank::world_size], batch_size=batch_size, workers=workers,
                            attributes=attributes, progress=progress)
    table = result.table
    table["_position"] = rows.set_index("image_id").loc[table["image_id"], "_position"].to_numpy()
    part = (table, result.cams, result.attributes, result.embeddings)
    parts = gather(part) if gather else [part]
    if parts is None:
        return None
    table, cams, image_attributes, embeddings = _merge(parts)
    metrics = metrics_payload(table, splits, manifest, classes, dataset_dir,
                              skipped_unreadable=int(len(rows) - len(table)), cam_shape=list(cams.shape[2:]))
    if image_attributes is not None:
        write_attributes(run_dir, image_attributes)
    else:
        (run_dir / ATTRIBUTES_FILE).unlink(missing_ok=True)  # stale: belonged to the previous evaluation
    shutil.rmtree(run_dir / "cache", ignore_errors=True)  # overlays of the previous evaluation
    write_npy(run_dir / CAMS_FILE, cams)
    _write_or_remove(run_dir / EMBEDDINGS_FILE, embeddings)
    write_parquet(run_dir / PREDICTIONS_FILE, table)
    write_json(run_dir / METRICS_FILE, metrics)  # last: its presence marks a complete evaluation
    return metrics


def _merge(parts: list) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame | None, np.ndarray | None]:
    """Shards (table, cams, attributes, embeddings) back into the manifest's row order; cam_index
    renumbered to match, so that row i of cams and embeddings belongs to the row with cam_index i."""
    table = pd.concat([p[0] for p in parts], ignore_index=True)
    cams = np.concatenate([p[1] for p in parts])
    order = np.argsort(table["_position"].to_numpy(), kind="stable")
    table = table.iloc[order].drop(columns="_position").reset_index(drop=True)
    table["cam_index"] = np.arange(len(table), dtype="int64")
    attributes = None
    if parts[0][2] is not None:
        attributes = pd.concat([p[2] for p in parts], ignore_index=True).iloc[order].reset_index(drop=True)
    embeddings = None
    if all(p[3] is not None for p in parts):
        embeddings = np.concatenate([p[3] for p in parts])[order]
    return table, cams[order], attributes, embeddings


def _write_or_remove(path: Path, array: np.ndarray | None) -> None:
    """Write array atomically; without one remove the file, which belonged to a previous evaluation."""
    if array is None:
        path.unlink(missing_ok=True)
    else:
        write_npy(path, array)
