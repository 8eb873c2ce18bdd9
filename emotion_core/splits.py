"""Stratified, seeded train/dev/test splits."""
from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "dev", "test")


def parse_split_spec(spec: str) -> tuple[float, float, float]:
    """'90/5/5' -> (0.9, 0.05, 0.05)."""
    try:
        parts = [float(p) for p in spec.split("/")]
    except ValueError:
        parts = []
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        raise ValueError(f"split {spec!r} must be three numbers train/dev/test, e.g. 90/5/5 or 80/5/15")
    total = sum(parts)
    return tuple(p / total for p in parts)  # type: ignore[return-value]


def stratified_split(labels: pd.Series, fractions: tuple[float, float, float], seed: int) -> pd.Series:
    """A 'train'/'dev'/'test' value per row, the same fractions within every label."""
    rng = np.random.default_rng(seed)
    result = pd.Series("train", index=labels.index, dtype="object")
    for label in sorted(labels.unique()):
        members = labels.index[labels == label].to_numpy()
        members = members[rng.permutation(len(members))]
        n_dev = int(round(len(members) * fractions[1]))
        n_test = int(round(len(members) * fractions[2]))
        result.loc[members[:n_dev]] = "dev"
        result.loc[members[n_dev:n_dev + n_test]] = "test"
    return result
