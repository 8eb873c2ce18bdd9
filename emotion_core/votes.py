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
    agree = pd.to_numeric(agree, errors="coerce").astype("float64")
    total = agree + pd.to_numeric(disagree, errors="coerce").astype("float64")
    return (agree / total.where(total > 0)).astype("float64")


def agreement_level(agree: pd.Series, disagree: pd.Series) -> pd.Series:
    """Most specific level per image: strongly divided is also non-unanimous.

    strongly divided: agree - disagree <= 1 (3 vs 2 of 5); unanimous: disagree == 0.
    """
    a = pd.to_numeric(agree, errors="coerce")
    d = pd.to_numeric(disagree, errors="coerce")
    level = np.where(d == 0, UNANIMOUS, np.where(a - d <= 1, STRONGLY_DIVIDED, NON_UNANIMOUS))
    level = np.where(a.isna() | d.isna(), NO_VOTES, level)
    return pd.Series(level, index=agree.index, dtype="object")


def vote_flags(frame: pd.DataFrame) -> pd.DataFrame:
    """Boolean columns non_unanimous / strongly_divided (False where votes are missing)."""
    a = pd.to_numeric(frame["agree"], errors="coerce")
    d = pd.to_numeric(frame["disagree"], errors="coerce")
    has_votes = a.notna() & d.notna()
    return pd.DataFrame({
        "non_unanimous": (has_votes & (d > 0)).to_numpy(dtype=bool),
        "strongly_divided": (has_votes & (a - d <= 1)).to_numpy(dtype=bool),
    }, index=frame.index)
