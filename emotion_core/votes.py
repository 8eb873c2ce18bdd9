"""Annotator vote agreement, read from the counts (never assuming 5 voters).

Two kinds of votes, one definition. FI's Turkers voted agree or disagree on the one emotion
shown to them (`agree`, `disagree`). Flickr_LDL and Twitter_LDL give every image a vote
distribution over all the classes (`votes_<class>` counts), Emotion6 a probability distribution
(`votes_<class>` shares summing to 1). A row's distribution is used when every votes_<class>
column of the table is recorded for it and one of them is its label's; otherwise its agree /
disagree counts are. FI is the distribution's two-answer case: "agree" is the label, "disagree"
the one other answer, so every rule below reads the same on both.

- agreement:         votes for the label / all votes (FI: agree / (agree + disagree); a
                     distribution: votes_<label> / sum of votes_*, so Emotion6's probabilities
                     are already shares)
- no votes:          no usable votes: a count unknown, or all votes 0
- unanimous:         every vote for the label (FI: disagree == 0; a distribution: every other
                     class 0)
- non-unanimous:     any vote for another answer (includes strongly divided)
- strongly divided:  non-unanimous and the label at most one vote ahead of the strongest other
                     answer (FI: agree - disagree <= 1, 3 vs 2 of 5; a distribution: votes_<label>
                     minus the most-voted other class <= 1, e.g. 5 Awe vs 4 Fear; shares without
                     counts (Emotion6, see holds_shares): that margin <= 0.1 of all votes)

Counts or shares is decided for the whole table (holds_shares), never row by row: an Emotion6 image
with all its probability on one class (0, 0, 1, 0, ...) reads like one voter's count on its own.
The distribution's columns are votes_<class> for the run's classes only (the table's p_<class>
columns), so a stray votes_total is never taken for a class.

Strongly divided compares the label with the runner-up class, not with all other votes
together: an LDL image with 4 of 11 votes for its label, spread 3/2/1/1 over the others, is a
plurality with a clear lead, not a coin flip, while 4 Awe vs 4 Fear would be (such exact ties
are left out at import).
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

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
# The same groups in the words of a vote distribution (LDL, Emotion6)
DISTRIBUTION_GROUP_LABELS = {
    UNANIMOUS: "unanimous (every vote for the label)",
    NON_UNANIMOUS: "non-unanimous (any vote for another class; includes strongly divided)",
    STRONGLY_DIVIDED: "strongly divided (label ≤ 1 vote ahead of the runner-up)",
    NO_VOTES: "no votes",
}
VOTE_COLUMNS = ("agree", "disagree")
DISTRIBUTION_PREFIX = "votes_"
DIVIDED_VOTES = 1.0    # strongly divided: the label at most this many votes ahead of the runner-up
DIVIDED_SHARE = 0.1    # the same for shares without counts (Emotion6): about one voter of ten
SHARE_TOLERANCE = 1e-3  # shares sum to 1 within this (the Emotion6 importer's check)
PROBABILITY_PREFIX = "p_"  # a predictions table's p_<class> columns name the run's classes


@dataclass(frozen=True)
class Tally:
    """Every image's votes as the rules need them, float arrays (NaN: unknown)."""
    label: np.ndarray      # votes for the label (FI: agree)
    total: np.ndarray      # all votes
    runner_up: np.ndarray  # votes of the strongest other answer (FI: disagree)
    margin: np.ndarray     # how far ahead of the runner-up still counts as strongly divided


def distribution_columns(frame: pd.DataFrame, classes: Collection[str] | None = None) -> list[str]:
    """The table's votes_<class> columns of the run's classes, in the class set's order: `classes` when
    given, else the classes of the table's p_<class> columns (a predictions table), else (a manifest,
    which has no p_<class> columns) every votes_ column in table order."""
    return _distribution_keys(list(frame.columns), classes)


def holds_shares(frame: pd.DataFrame, classes: Collection[str] | None = None) -> bool:
    """Whether the table's vote distributions are shares (Emotion6's probabilities) rather than counts
    (Flickr_LDL's votes), decided for the whole table. Integer columns are counts (the LDL importer
    writes Int64), but dtypes do not survive every path (a count column with a gap is float after
    evaluation), so otherwise: shares when every complete distribution with votes sums to 1
    (±SHARE_TOLERANCE) and some value of the table is fractional."""
    columns = distribution_columns(frame, classes)
    if not columns or all(pd.api.types.is_integer_dtype(frame[c]) for c in columns):
        return False
    votes = np.column_stack([_as_float(frame[c]).to_numpy() for c in columns])  # (N, classes)
    votes = votes[~np.isnan(votes).any(axis=1)]
    totals = votes.sum(axis=1)
    votes, totals = votes[totals > 0], totals[totals > 0]
    return bool(len(totals) and np.all(np.abs(totals - 1.0) <= SHARE_TOLERANCE)
                and np.any(votes != np.round(votes)))


def distribution_holds_shares(distribution: Mapping[str, float]) -> bool:
    """One image's distribution alone read as shares (sums to 1, a fractional value): the guess for a
    row without its table. A one-hot Emotion6 row reads as a count here; pass holds_shares(table)."""
    values = np.array(list(distribution.values()), dtype=float)
    return bool(len(values) and abs(values.sum() - 1.0) <= SHARE_TOLERANCE and np.any(values != np.round(values)))


def tally(frame: pd.DataFrame) -> Tally:
    """The votes of every image: its distribution where it has one, else agree / disagree."""
    index = frame.index
    agree = _as_float(frame["agree"] if "agree" in frame else pd.Series(np.nan, index=index)).to_numpy()
    disagree = _as_float(frame["disagree"] if "disagree" in frame else pd.Series(np.nan, index=index)).to_numpy()
    label, total, runner_up = agree.copy(), agree + disagree, disagree.copy()
    margin = np.full(len(frame), DIVIDED_VOTES)
    rows = np.nonzero(_distribution_rows(frame))[0]
    if len(rows):
        columns = distribution_columns(frame)
        votes = np.column_stack([_as_float(frame[c]).to_numpy() for c in columns])  # (N, classes)
        position = {c[len(DISTRIBUTION_PREFIX):]: i for i, c in enumerate(columns)}
        cols = frame["label"].iloc[rows].map(position).to_numpy(dtype=int)
        others = votes[rows].copy()
        label[rows] = others[np.arange(len(rows)), cols]
        others[np.arange(len(rows)), cols] = 0.0
        total[rows] = votes[rows].sum(axis=1)
        runner_up[rows] = others.max(axis=1)
        if holds_shares(frame):  # the whole table's reading, not the row's
            margin[rows] = DIVIDED_SHARE * total[rows]
    return Tally(label, total, runner_up, margin)


def has_distribution(frame: pd.DataFrame) -> bool:
    """Whether some image of the table has a usable vote distribution (votes_<class>)."""
    return bool(_distribution_rows(frame).any())


def vote_distribution(row, classes: Collection[str] | None = None) -> dict[str, float] | None:
    """One image's votes per class ({'amusement': 1, 'awe': 6, ...}, class order; the classes as in
    distribution_columns), or None when the image has no complete distribution that includes its
    label (e.g. FI)."""
    columns = _distribution_keys(list(row.keys()), classes)
    values = {c[len(DISTRIBUTION_PREFIX):]: row[c] for c in columns}
    if not values or row.get("label") not in values or any(pd.isna(v) for v in values.values()):
        return None
    return {name: float(v) for name, v in values.items()}


def vote_agreement(frame: pd.DataFrame) -> pd.Series:
    """Share of the votes for the label per image; NaN where there are no votes."""
    return pd.Series(_share(tally(frame)), index=frame.index, dtype="float64")


def images_in_group(frame: pd.DataFrame, group: str) -> pd.Series:
    """Boolean mask of the table's images in one vote group (see the module docstring)."""
    return _group_mask(tally(frame), group, frame.index)


def vote_levels(frame: pd.DataFrame) -> pd.Series:
    """The most specific group per image, for badges: strongly divided before non-unanimous."""
    return _levels(tally(frame), frame.index)


def agreement(agree: pd.Series, disagree: pd.Series) -> pd.Series:
    """agree / (agree + disagree); NaN where there are no votes (FI's counts only: a table
    that may hold a distribution goes through vote_agreement)."""
    agree = _as_float(agree)
    total = agree + _as_float(disagree)
    return (agree / total.where(total > 0)).astype("float64")


def in_group(agree: pd.Series, disagree: pd.Series, group: str) -> pd.Series:
    """Boolean mask of the images in one vote group, from agree / disagree counts only."""
    return _group_mask(_agree_tally(agree, disagree), group, agree.index)


def agreement_level(agree: pd.Series, disagree: pd.Series) -> pd.Series:
    """The most specific group per image from agree / disagree counts only."""
    return _levels(_agree_tally(agree, disagree), agree.index)


def group_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Images per vote group of a predictions table (groups overlap, see the module docstring)."""
    counted = tally(frame)
    return {group: int(_group_mask(counted, group, frame.index).sum()) for group in VOTE_GROUPS}


def group_labels(frame: pd.DataFrame) -> dict[str, str]:
    """The groups' names in the words of the table's votes: a distribution's or FI's agree/disagree."""
    return DISTRIBUTION_GROUP_LABELS if has_distribution(frame) else GROUP_LABELS


def with_votes(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with agree/disagree (nullable ints; NA where a column is absent) and
    agreement / agreement_level recomputed from the votes (the distribution where an image has
    one), so that a run written by another tool or an older EmoLens reads the same as a fresh one."""
    frame = frame.copy()
    for column in VOTE_COLUMNS:
        values = frame[column] if column in frame else pd.Series(pd.NA, index=frame.index)
        frame[column] = pd.to_numeric(values, errors="coerce").round().astype("Int64")
    counted = tally(frame)
    frame["agreement"] = _share(counted)
    frame["agreement_level"] = _levels(counted, frame.index)
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
    if not images_in_group(frame, NO_VOTES).all():
        return None
    if distribution_columns(frame):
        return "No image has a usable vote distribution (a votes_ column is empty, or all votes are 0)."
    has = [c for c in VOTE_COLUMNS if c in frame and frame[c].notna().any()]
    if len(has) == 1:
        other = next(c for c in VOTE_COLUMNS if c not in has)
        return f"This dataset records {has[0]} votes but no {other} votes, so agreement cannot be computed."
    if has:
        return "No image has usable votes (agree + disagree is 0, or one of the counts is missing)."
    return "This dataset has no agree/disagree votes (e.g. imported from class folders)."


def _distribution_keys(keys: list, classes: Collection[str] | None) -> list[str]:
    """votes_<class> among `keys` (a table's columns, a row's keys) for the classes (see distribution_columns;
    p_ columns none of which has a votes_ column, such as a p_value, name no classes)."""
    present = set(keys)
    if classes is not None:
        return [DISTRIBUTION_PREFIX + c for c in classes if DISTRIBUTION_PREFIX + c in present]
    predicted = [DISTRIBUTION_PREFIX + k[len(PROBABILITY_PREFIX):] for k in keys
                 if isinstance(k, str) and k.startswith(PROBABILITY_PREFIX)]
    return ([c for c in predicted if c in present]
            or [k for k in keys if isinstance(k, str) and k.startswith(DISTRIBUTION_PREFIX)])


def _distribution_rows(frame: pd.DataFrame) -> np.ndarray:
    columns = distribution_columns(frame)
    if not columns or "label" not in frame:
        return np.zeros(len(frame), dtype=bool)
    recorded = frame[columns].notna().all(axis=1).to_numpy()
    labelled = frame["label"].isin([c[len(DISTRIBUTION_PREFIX):] for c in columns]).to_numpy()
    return recorded & labelled


def _share(counted: Tally) -> np.ndarray:
    voted = counted.total > 0
    return np.divide(counted.label, counted.total, out=np.full(len(voted), np.nan), where=voted)


def _agree_tally(agree: pd.Series, disagree: pd.Series) -> Tally:
    a, d = _as_float(agree).to_numpy(), _as_float(disagree).to_numpy()
    return Tally(a, a + d, d, np.full(len(a), DIVIDED_VOTES))


def _group_mask(counted: Tally, group: str, index: pd.Index) -> pd.Series:
    if group not in VOTE_GROUPS:
        raise ValueError(f"unknown vote group {group!r}; valid: {', '.join(VOTE_GROUPS)}")
    voted = counted.total > 0  # NaN compares False: a missing count means no votes
    others = voted & (counted.runner_up > 0)
    masks = {
        NO_VOTES: ~voted,
        UNANIMOUS: voted & (counted.runner_up == 0),
        NON_UNANIMOUS: others,
        STRONGLY_DIVIDED: others & (counted.label - counted.runner_up <= counted.margin),
    }
    return pd.Series(masks[group], index=index, dtype=bool)


def _levels(counted: Tally, index: pd.Index) -> pd.Series:
    level = np.full(len(index), NON_UNANIMOUS, dtype=object)
    for group in (STRONGLY_DIVIDED, UNANIMOUS, NO_VOTES):  # disjoint masks
        level[_group_mask(counted, group, index).to_numpy()] = group
    return pd.Series(level, index=index, dtype="object")


def _as_float(values: pd.Series) -> pd.Series:
    """Nullable integer votes as floats: a missing vote becomes NaN, never pd.NA."""
    return pd.to_numeric(values, errors="coerce").astype("float64")
