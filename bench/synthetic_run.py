"""A large synthetic run dir (predictions, CAMs, metrics, attributes) for the benchmarks."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from emotion_core.evaluation import split_counts
from emotion_core.fileio import write_json, write_npy, write_parquet
from emotion_core.labels import FI_CLASSES
from emotion_core.metrics import evaluation_metrics
from emotion_core.model import ModelConfig, build_model, save_checkpoint
from emotion_core.votes import agreement, agreement_level


def make_run(workspace: Path, n: int = 22_000, seed: int = 0, distinct_images: int | None = 64,
             image_size: tuple[int, int] = (128, 96)) -> Path:
    """workspace/runs/big: n test predictions at ~60% accuracy. Each points at one of
    `distinct_images` image files, or (None) at a file of its own, as in a real dataset, so that
    no thumbnail made for one cell serves another."""
    rng = np.random.default_rng(seed)
    classes = FI_CLASSES  # FI-shaped: the benchmarks measure the paper's dataset size
    names = classes.names
    run, images = workspace / "runs" / "big", workspace / "datasets" / "big"
    run.mkdir(parents=True, exist_ok=True)
    images.mkdir(parents=True, exist_ok=True)
    paths = write_images(images, n if distinct_images is None else distinct_images, image_size, rng)
    label = rng.integers(0, len(names), n)
    pred = np.where(rng.random(n) < 0.6, label, rng.integers(0, len(names), n))
    probabilities = rng.dirichlet(np.ones(len(names)), n).astype(np.float32)
    probabilities[np.arange(n), pred] += 1.0
    probabilities /= probabilities.sum(1, keepdims=True)
    agree = rng.integers(3, 6, n)
    table = pd.DataFrame({"image_id": [f"img{i:06d}" for i in range(n)], "path": [paths[i % len(paths)] for i in range(n)],
                          "split": "test", "label": [names[i] for i in label], "label_idx": label,
                          "agree": pd.array(agree, dtype="Int64"), "disagree": pd.array(5 - agree, dtype="Int64"),
                          "pred_idx": pred, "pred": [names[i] for i in pred],
                          "confidence": probabilities.max(1), "correct": label == pred})
    for i, emotion in enumerate(names):
        table[f"p_{emotion}"] = probabilities[:, i]
    table["agreement"] = agreement(table["agree"], table["disagree"])
    table["agreement_level"] = agreement_level(table["agree"], table["disagree"])
    table["cam_index"] = np.arange(n)
    write_parquet(run / "predictions.parquet", table)
    write_npy(run / "cams.npy", rng.random((n, 2, 14, 14)).astype(np.float16))
    manifest = table[["label", "split"]]
    write_json(run / "metrics.json", {"dataset": str(images), "classes": classes.to_dict(),
                                      "splits": {"test": evaluation_metrics(table, classes)},
                                      "split_counts": split_counts(manifest, classes), "skipped_unreadable": 0})
    write_parquet(run / "attributes.parquet", pd.DataFrame({
        "image_id": table["image_id"], "monochrome": rng.random(n) < 0.1, "warm": rng.random(n) < 0.2,
        "has_face": rng.random(n) < 0.3, "has_cat_face": rng.random(n) < 0.05,
        "brightness": rng.random(n), "colorfulness": rng.random(n) * 100, "contrast": rng.random(n) * 0.3,
        "cam_concentration": rng.random(n) * 0.5 + 0.1}))
    config = ModelConfig(arch="vgg_small", input_size=64)
    save_checkpoint(run / "checkpoint.pt", build_model(config), config, classes)
    return run


def write_images(folder: Path, count: int, size: tuple[int, int], rng: np.random.Generator) -> list[str]:
    """`count` JPEG files of `size` (width, height), photo-like (smooth, not noise). Copies of up to
    64 encoded images: a file each, each decoded on its own, without encoding thousands."""
    encoded = []
    for _ in range(min(count, 64)):
        coarse = rng.integers(0, 255, (max(1, size[1] // 16), max(1, size[0] // 16), 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(coarse).resize(size, Image.BICUBIC).save(buffer, format="JPEG", quality=85)
        encoded.append(buffer.getvalue())
    paths = [str(folder / f"{i}.jpg") for i in range(count)]
    for i, path in enumerate(paths):
        Path(path).write_bytes(encoded[i % len(encoded)])
    return paths
