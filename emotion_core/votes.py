"""Annotator vote agreement, read from the counts (never assuming 5 voters)."""
from __future__ import annotations

import numpy as np
import pandas as pd

UNANIMOUS = "unanimous"
NON_UNANIMOUS = "non-unanimous"
STRONGLY_DIVIDED = "strongly divided"
NO_VOTES = "no votes"
AGREEMENT_LEVELS = (UNANIMOUS, NON_UNANIMOUS, STRONGLY_DIVIDED, NO_VOTES)


def agreement(agree: pd.Series, disagree: pd.Series) -> pd.Series:
    """agree / (agree + disagree); NaN where there are no votes."""
    agree = _as_float(agree)
    total = agree + _as_float(disagree)
    return (agree / total.where(total > 0)).astype("float64")


def agreement_level(agree: pd.Series, disagree: pd.Series) -> pd.Series:
    """Most specific level per image: strongly divided is also non-unanimous.

    strongly divided: agree - disagree <= 1 (3 vs 2 of 5); unanimous: disagree == 0.
    """
    a = _as_float(agree)
    d = _as_float(disagree)
    level = np.where(d == 0, UNANIMOUS, np.where(a - d <= 1, STRONGLY_DIVIDED, NON_UNANIMOUS))
    level = np.where(a.isna() | d.isna(), NO_VOTES, level)
    return pd.Series(level, index=agree.index, dtype="object")


def _as_float(values: pd.Series) -> pd.Series:
    """Nullable integer votes as floats: a missing vote becomes NaN, never pd.NA."""
    return pd.to_numeric(values, errors="coerce").astype("float64")
