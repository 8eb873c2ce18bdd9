"""Accuracy, per-class precision/recall/F1/support and the confusion matrix, for any class set."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from emotion_core.emotion_metrics import emotion_aware_metrics
from emotion_core.labels import FI_CLASSES, ClassSet, class_set_from


def confusion_matrix(true: np.ndarray, pred: np.ndarray, num_classes: int = len(FI_CLASSES)) -> np.ndarray:
    """counts[i, j] = images of true class i predicted as j."""
    true, pred = np.asarray(true, dtype=np.int64), np.asarray(pred, dtype=np.int64)
    counts = np.bincount(true * num_classes + pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def per_class_table(counts: np.ndarray, classes: Iterable[str] = FI_CLASSES) -> pd.DataFrame:
    """precision, recall, f1, support per class from a confusion matrix (0 where undefined);
    classes: the ids in model order (a ClassSet or a list)."""
    diagonal = np.diag(counts).astype(float)
    predicted, support = counts.sum(axis=0), counts.sum(axis=1)
    precision = np.divide(diagonal, predicted, out=np.zeros_like(diagonal), where=predicted > 0)
    recall = np.divide(diagonal, support, out=np.zeros_like(diagonal), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(diagonal), where=denominator > 0)
    return pd.DataFrame({"emotion": list(classes), "precision": precision, "recall": recall,
                         "f1": f1, "support": support.astype(int)})


def evaluation_metrics(predictions: pd.DataFrame, classes: Iterable[str] = FI_CLASSES, *,
                       has_probabilities: bool = True) -> dict:
    """The metrics.json payload of one split for a predictions table (label_idx / pred_idx
    columns indexing `classes`, a ClassSet or a list of ids in model order), with the emotion-aware
    metrics that apply (emotion_core.emotion_metrics: polarity, ECC/EMC, calibration, agreement, LDL;
    has_probabilities False, a labels-only import: no LDL entries)."""
    class_set = classes if isinstance(classes, ClassSet) else class_set_from(list(classes))
    names = list(class_set.names)
    counts = confusion_matrix(predictions["label_idx"], predictions["pred_idx"], len(names))
    table = per_class_table(counts, names)
    total = int(counts.sum())
    return {
        "classes": names,
        "n_images": total,
        "accuracy": float(np.trace(counts) / total) if total else 0.0,
        "macro_f1": float(table["f1"].mean()),
        "per_class": table.to_dict(orient="records"),
        "confusion_matrix": counts.tolist(),
        **emotion_aware_metrics(predictions, counts, class_set, has_probabilities=has_probabilities),
    }
