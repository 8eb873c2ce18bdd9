"""Annotator vote agreement, read from the counts (never assuming 5 voters).

The one definition every view uses (cell summary, gallery filter and badges, agreement page):

- no votes:          agree or disagree unknown, or agree + disagree == 0
- unanimous:         votes and disagree == 0
- non-unanimous:     votes and disagree > 0 (includes strongly divided)
- strongly divided:  non-unanimous and agree - disagree <= 1 (3 vs 2 of 5)
"""
from __future__ import annotations

import numpy as np
import pandas as pd

UNANIMOUS = "unanimous"
NON_UNANIMOUS = "non-unanimous"
STRONGLY_DIVIDED = "strongly divided"
NO_VOTES = "no votes"
AGREEMENT_LEVELS = (UNANIMOUS, NON_UNANIMOUS, STRONGLY_DIVIDED, NO_VOTES)
# Vote groups share the level names but overlap: strongly divided is a subset of non-unanimous.
VOTE_GROUPS = AGREEMENT_LEVELS
GROUP_LABELS = {
    UNANIMOUS: "unanimous (no disagree votes)",
    NON_UNANIMOUS: "non-unanimous (any disagree vote; includes strongly divided)",
    STRONGLY_DIVIDED: "strongly divided (agree − disagree ≤ 1)",
    NO_VOTES: "no votes",
}
VOTE_COLUMNS = ("agree", "disagree")


def agreement(agree: pd.Series, disagree: pd.Series) -> pd.Series:
    """agree / (agree + disagree); NaN where there are no votes."""
    agree = _as_float(agree)
    total = agree + _as_float(disagree)
    return (agree / total.where(total > 0)).astype("float64")


def in_group(agree: pd.Series, disagree: pd.Series, group: str) -> pd.Series:
    """Boolean mask of the images in one vote group (see the module docstring)."""
    if group not in VOTE_GROUPS:
        raise ValueError(f"unknown vote group {group!r}; valid: {', '.join(VOTE_GROUPS)}")
    a, d = _as_float(agree), _as_float(disagree)
    voted = (a + d > 0).to_numpy()  # NaN compares False: a missing count means no votes
    masks = {
        NO_VOTES: ~voted,
        UNANIMOUS: voted & (d == 0).to_numpy(),
        NON_UNANIMOUS: voted & (d > 0).to_numpy(),
        STRONGLY_DIVIDED: voted & (d > 0).to_numpy() & (a - d <= 1).to_numpy(),
    }
    return pd.Series(masks[group], index=agree.index, dtype=bool)


def group_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Images per vote group of a predictions table (groups overlap, see the module docstring)."""
    return {group: int(in_group(frame["agree"], frame["disagree"], group).sum()) for group in VOTE_GROUPS}


def agreement_level(agree: pd.Series, disagree: pd.Series) -> pd.Series:
    """The most specific group per image, for badges: strongly divided before non-unanimous."""
    level = np.full(len(agree), NON_UNANIMOUS, dtype=object)
    for group in (STRONGLY_DIVIDED, UNANIMOUS, NO_VOTES):  # disjoint masks
        level[in_group(agree, disagree, group).to_numpy()] = group
    return pd.Series(level, index=agree.index, dtype="object")


def with_votes(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with agree/disagree (nullable ints; NA where a column is absent) and
    agreement / agreement_level recomputed from them, so that a run written by another
    tool or an older EmoLens reads the same as a fresh one."""
    frame = frame.copy()
    for column in VOTE_COLUMNS:
        values = frame[column] if column in frame else pd.Series(pd.NA, index=frame.index)
        frame[column] = pd.to_numeric(values, errors="coerce").round().astype("Int64")
    frame["agreement"] = agreement(frame["agree"], frame["disagree"])
    frame["agreement_level"] = agreement_level(frame["agree"], frame["disagree"])
    return frame


def votes_description(agree, disagree) -> str:
    """One image's votes in words: '3 agree / 2 disagree', '3 agree, disagree not recorded', 'no votes'."""
    known = {name: None if pd.isna(value) else int(value)
             for name, value in (("agree", agree), ("disagree", disagree))}
    if known["agree"] is None and known["disagree"] is None:
        return NO_VOTES
    if None in known.values():
        have, missing = ("agree", "disagree") if known["disagree"] is None else ("disagree", "agree")
        return f"{known[have]} {have}, {missing} not recorded"
    return f"{known['agree']} agree / {known['disagree']} disagree"


def missing_votes_note(frame: pd.DataFrame) -> str | None:
    """Why a table has no usable votes at all (None when some image has them)."""
    if not in_group(frame["agree"], frame["disagree"], NO_VOTES).all():
        return None
    has = [c for c in VOTE_COLUMNS if c in frame and frame[c].notna().any()]
    if len(has) == 1:
        other = next(c for c in VOTE_COLUMNS if c not in has)
        return f"This dataset records {has[0]} votes but no {other} votes, so agreement cannot be computed."
    if has:
        return "No image has usable votes (agree + disagree is 0, or one of the counts is missing)."
    return "This dataset has no agree/disagree votes (e.g. imported from class folders)."


def _as_float(values: pd.Series) -> pd.Series:
    """Nullable integer votes as floats: a missing vote becomes NaN, never pd.NA."""
    return pd.to_numeric(values, errors="coerce").astype("float64")
