"""Likely label errors, ranked by confident learning (cleanlab) on out-of-sample probabilities.

Confident learning judges a label by what a model that never saw the image thinks of it. The dev and
test predictions of a run are such probabilities as they are. The run's own predictions of its training
images are not: the model was fitted to those very labels, so a wrong label there looks right. Training
images are therefore ranked only from the cross-validated probabilities that `python -m training.crossval`
writes (OOF_FILE: each image predicted by a model trained on the other folds), never from
predictions.parquet's train rows.

The study's question (is it the model or the label?) is then a 2 x 2 count: flagged or not, unanimous
votes or not, with Fisher's exact test.
"""
from __future__ import annotations

import os
import shlex
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emotion_core.runs import RUN_FILE, is_imported_predictions, read_json
from emotion_core.votes import (AGREEMENT_LEVELS, DISTRIBUTION_PREFIX, NO_VOTES, PROBABILITY_PREFIX, UNANIMOUS,
                                VOTE_COLUMNS, distribution_columns, vote_distribution, votes_description, with_votes)

OOF_FILE = "oof_probabilities.parquet"
TRAIN = "train"
ALL_OUT_OF_SAMPLE = "all out-of-sample"
SUM_TOLERANCE = 1e-3  # probabilities sum to 1 within this (training.import_predictions' check)
CROSSVAL_COMMAND = "python -m training.crossval --run {run} --folds 5"
PROBABILITIES_FROM = "probabilities_from"  # where a row's probabilities come from (EVALUATION or CROSS_VALIDATION)
EVALUATION, CROSS_VALIDATION = "evaluation", "cross-validation"
# What the CSV export holds, in this order (the first six for relabelling elsewhere).
EXPORT_COLUMNS = {"image_id": "image_id", "path": "path", "given_label": "label", "suggested_label": "suggested",
                  "score": "score", "votes": "votes", "flagged": "flagged", "agreement_level": "agreement_level",
                  "split": "split"}
FLAGGED_ROWS = {True: "flagged", False: "not flagged"}


@dataclass(frozen=True)
class Ranking:
    """Every image of the ranked set, most likely label error first (`table`), and what the ranking could
    not do in words (`notes`, e.g. a class too small to flag all its issues)."""
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def probability_columns(classes: Sequence[str]) -> list[str]:
    return [PROBABILITY_PREFIX + c for c in classes]


def out_of_sample(predictions: pd.DataFrame, oof: pd.DataFrame | None = None,
                  train_votes: pd.DataFrame | None = None) -> pd.DataFrame:
    """The run's out-of-sample probabilities: its evaluated rows of every split but train, as they are, and
    the cross-validated train rows of `oof` (OOF_FILE) when given. The evaluated train rows are in-sample and
    are always dropped. The train rows' votes come from `train_votes` (the dataset's manifest: image_id,
    agree, disagree, votes_<class>) when given, else from the evaluated train rows, else they have none.
    Column PROBABILITIES_FROM says which source each row's probabilities are from."""
    evaluated = predictions[predictions["split"] != TRAIN].assign(**{PROBABILITIES_FROM: EVALUATION})
    if oof is None:
        return evaluated.reset_index(drop=True)
    train = oof[oof["split"] == TRAIN] if "split" in oof else oof.assign(split=TRAIN)
    votes = train_votes if train_votes is not None else predictions[predictions["split"] == TRAIN]
    vote_columns = [c for c in votes.columns if c in VOTE_COLUMNS or c.startswith(DISTRIBUTION_PREFIX)]
    votes = votes.drop_duplicates("image_id").set_index("image_id")[vote_columns]
    train = train.drop(columns=[c for c in vote_columns if c in train]).join(votes, on="image_id")
    train = with_votes(train.assign(**{PROBABILITIES_FROM: CROSS_VALIDATION}))
    return pd.concat([evaluated, train], ignore_index=True)


def scope_rows(table: pd.DataFrame, scope: str) -> pd.DataFrame:
    """One split of an out_of_sample table, or all of it (ALL_OUT_OF_SAMPLE)."""
    if scope == ALL_OUT_OF_SAMPLE:
        return table
    choices = scopes(table)
    if scope not in choices:
        raise ValueError(f"no out-of-sample probabilities for {scope!r}; valid: {', '.join(choices)}")
    return table[table["split"] == scope]


def rank_label_issues(table: pd.DataFrame, classes: Sequence[str], *,
                      method: str = "self_confidence") -> Ranking:
    """cleanlab's find_label_issues (column `flagged`) and label quality scores (`score`, 0 to 1, low = likely
    a label error; method as in cleanlab.rank.get_label_quality_scores) for every image of `table` (out-of-
    sample probabilities p_<class> for `classes`, given `label`), with the class the model suggests (the most
    probable one; the given label itself where the model agrees) and `issue_rank` (1 = most likely error).
    Sorted by issue rank. Bad input is a one-line ValueError."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    classes = list(classes)
    probabilities = checked_probabilities(table, classes)
    labels = checked_labels(table, classes)
    with warnings.catch_warnings(record=True) as heard:
        warnings.simplefilter("always")
        flagged = find_label_issues(labels, probabilities, n_jobs=1)  # n_jobs=1: no worker processes in a dashboard
        score = get_label_quality_scores(labels, probabilities, method=method)
    ranked = table.assign(suggested=np.asarray(classes)[probabilities.argmax(axis=1)], score=score, flagged=flagged)
    ranked = ranked.sort_values("score", kind="stable").reset_index(drop=True)
    ranked["issue_rank"] = np.arange(1, len(ranked) + 1)
    return Ranking(ranked, _notes(heard, classes))


def checked_probabilities(table: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """The (N, classes) probabilities; a one-line ValueError when a column is missing or a row is not a
    probability distribution."""
    columns = probability_columns(classes)
    missing = [c for c in columns if c not in table]
    if missing:
        raise ValueError(f"no probability column {', '.join(missing)}: the probabilities are not of this run's "
                         f"classes ({', '.join(classes)})")
    probabilities = table[columns].to_numpy(dtype=float)  # (N, classes)
    bad = ~(np.isfinite(probabilities).all(axis=1) & (probabilities >= 0).all(axis=1)
            & (np.abs(probabilities.sum(axis=1) - 1.0) <= SUM_TOLERANCE))
    if bad.any():
        first = int(np.argmax(bad))
        row = probabilities[first]
        what = ("has a missing value" if not np.isfinite(row).all() else
                "has a negative value" if (row < 0).any() else f"sums to {row.sum():.3f}")
        raise ValueError(f"{int(bad.sum())} of {len(table)} images have probabilities that are not a distribution "
                         f"over the classes (image {table['image_id'].iloc[first]} {what}; they must be ≥ 0 and sum "
                         f"to 1 ± {SUM_TOLERANCE})")
    return probabilities


def checked_labels(table: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """The given labels as class indices; a one-line ValueError when confident learning cannot judge them
    (too few images, one class only, a class without images, a label outside the classes)."""
    if len(table) < len(classes):
        raise ValueError(f"{len(table)} images for {len(classes)} classes: ranking label issues needs at least as "
                         "many images as classes (choose a larger split or all out-of-sample images)")
    unknown = sorted(set(table["label"]) - set(classes))
    if unknown:
        raise ValueError(f"unknown label {', '.join(map(str, unknown))}; valid: {', '.join(classes)}")
    present = set(table["label"])
    if len(present) < 2:
        raise ValueError(f"all {len(table)} images are labelled {next(iter(present))}: confident learning needs "
                         "images of at least two classes")
    empty = [c for c in classes if c not in present]
    if empty:
        raise ValueError(f"no image is labelled {', '.join(empty)}: confident learning needs images of every class "
                         "to judge labels against it (choose a larger split or all out-of-sample images)")
    return table["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=int)


def _notes(heard: list[warnings.WarningMessage], classes: list[str]) -> list[str]:
    """cleanlab's 'too few examples in class k' warnings as one line naming the classes."""
    small = sorted({int(str(w.message).split("class: ")[1].split(",")[0]) for w in heard
                    if "too few examples" in str(w.message) and "class: " in str(w.message)})
    if not small:
        return []
    return [f"Too few images of {', '.join(classes[k] for k in small)} to flag every label issue of "
            f"{'that class' if len(small) == 1 else 'those classes'} (cleanlab's min_examples_per_class)."]


def filter_issues(ranked: pd.DataFrame, *, given: Sequence[str] = (), suggested: Sequence[str] = (),
                  levels: Sequence[str] = (), flagged_only: bool = False) -> pd.DataFrame:
    """The ranked images with the given labels, suggested classes and agreement levels (empty: any),
    optionally only the flagged ones; in ranking order."""
    unknown = sorted(set(levels) - set(AGREEMENT_LEVELS))
    if unknown:
        raise ValueError(f"unknown agreement level {', '.join(unknown)}; valid: {', '.join(AGREEMENT_LEVELS)}")
    keep = pd.Series(True, index=ranked.index)
    for column, wanted in (("label", given), ("suggested", suggested), ("agreement_level", levels)):
        if wanted:
            keep &= ranked[column].isin(list(wanted))
    if flagged_only:
        keep &= ranked["flagged"]
    return ranked[keep]


def flagged_by_agreement(ranked: pd.DataFrame) -> pd.DataFrame:
    """Images per (flagged or not) x agreement level (the disjoint levels of emotion_core.votes, in their
    order), with a total column and row: rows 'flagged', 'not flagged', 'all'."""
    levels = pd.Categorical(ranked["agreement_level"], categories=list(AGREEMENT_LEVELS))
    rows = ranked["flagged"].map(FLAGGED_ROWS)
    counts = pd.crosstab(pd.Categorical(rows, categories=list(FLAGGED_ROWS.values())), levels, dropna=False)
    counts = counts.reindex(index=list(FLAGGED_ROWS.values()), columns=list(AGREEMENT_LEVELS), fill_value=0)
    counts["all"] = counts.sum(axis=1)
    counts.loc["all"] = counts.sum(axis=0)
    counts.index.name, counts.columns.name = None, None
    return counts.astype(int)


@dataclass(frozen=True)
class FlaggedTest:
    """Fisher's exact test (two-sided) of flagged x (non-unanimous vs unanimous votes), images without
    votes left out. table: [[flagged non-unanimous, flagged unanimous], [not flagged non-unanimous, not
    flagged unanimous]]."""
    table: tuple[tuple[int, int], tuple[int, int]]
    odds_ratio: float
    p_value: float
    answer: str


def flagged_vs_unanimous(ranked: pd.DataFrame) -> FlaggedTest:
    """Are the flagged images the divided ones? Fisher's exact test and the answer in one sentence."""
    from scipy.stats import fisher_exact

    voted = ranked[ranked["agreement_level"] != NO_VOTES]
    divided = voted["agreement_level"] != UNANIMOUS
    flagged = voted["flagged"].astype(bool)
    table = ((int((flagged & divided).sum()), int((flagged & ~divided).sum())),
             (int((~flagged & divided).sum()), int((~flagged & ~divided).sum())))
    if not len(voted) or not flagged.any() or flagged.all():
        return FlaggedTest(table, float("nan"), float("nan"), _no_test_reason(ranked, voted, flagged))
    odds_ratio, p_value = fisher_exact(table)
    return FlaggedTest(table, float(odds_ratio), float(p_value), _answer(table, float(odds_ratio), float(p_value)))


def _no_test_reason(ranked: pd.DataFrame, voted: pd.DataFrame, flagged: pd.Series) -> str:
    if not len(voted):
        return "No image here has votes: whether the flagged images are the divided ones cannot be asked."
    if not flagged.any():
        return f"No image with votes is flagged (of {len(voted)}): there is nothing to compare."
    return f"Every image with votes is flagged ({len(voted)}): there is nothing to compare them with."


def _answer(table, odds_ratio: float, p_value: float) -> str:
    (flagged_divided, flagged_unanimous), (other_divided, other_unanimous) = table
    flagged_n, other_n = flagged_divided + flagged_unanimous, other_divided + other_unanimous
    flagged_share, other_share = flagged_divided / flagged_n, other_divided / other_n
    p_text = "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"
    if p_value < 0.05:
        verdict = ("Yes: flagged images have non-unanimous votes more often" if flagged_share > other_share else
                   "No, the opposite: flagged images have non-unanimous votes less often")
    else:
        verdict = "Not detectably: flagged images have non-unanimous votes about as often"
    compared = "than" if p_value < 0.05 else "as"
    return (f"{verdict} ({flagged_divided} of {flagged_n}, {flagged_share:.0%}) {compared} the rest ({other_divided} of "
            f"{other_n}, {other_share:.0%}); odds ratio {odds_ratio:.2f}, Fisher's exact test {p_text} (two-sided).")


def votes_in_words(row: pd.Series | dict, classes: Sequence[str] | None = None) -> str:
    """An image's votes as text for a CSV: '3 agree / 2 disagree', or a vote distribution as
    'awe 6, fear 4, amusement 1' (most votes first, classes without votes left out), or 'no votes'."""
    distribution = vote_distribution(row, classes)
    if distribution and sum(distribution.values()) > 0:
        ordered = sorted(((v, c) for c, v in distribution.items() if v > 0), key=lambda vc: -vc[0])
        return ", ".join(f"{c} {v:g}" for v, c in ordered)
    return votes_description(row.get("agree"), row.get("disagree"))


def export_table(ranked: pd.DataFrame, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """The ranked images for relabelling elsewhere, in ranking order: image_id, path, given_label,
    suggested_label, score, votes (in words), flagged, agreement_level, split."""
    if distribution_columns(ranked, classes):
        votes = [votes_in_words(row, classes) for row in ranked.to_dict("records")]
    else:  # agree / disagree only (FI): without building a dict per row (118,000 rows: 5 s otherwise)
        none = pd.Series(np.nan, index=ranked.index)
        votes = [votes_description(a, d) for a, d in zip(ranked.get("agree", none), ranked.get("disagree", none))]
    table = ranked.assign(votes=votes)
    return pd.DataFrame({name: table[source].to_numpy() for name, source in EXPORT_COLUMNS.items()})


def export_csv(ranked: pd.DataFrame, classes: Sequence[str] | None = None) -> bytes:
    """export_table as UTF-8 CSV bytes (for a download button or a file)."""
    return export_table(ranked, classes).to_csv(index=False, float_format="%.6g").encode("utf-8")


def crossval_hint(run_dir: str | os.PathLike) -> str:
    """Why the training images are not ranked, and the one command that makes them rankable (for a run
    without a training recipe, imported predictions or a model trained elsewhere, what crossval needs instead)."""
    why = ("The training images are not ranked: the run's own predictions of them are in-sample (the model "
           "learned those labels, so a wrong one looks right). ")
    if not has_training_recipe(run_dir):
        return why + ("training.crossval would write out-of-sample probabilities for them, but it repeats a run's "
                      "training recipe (run.json's config), which this run lacks (imported predictions or a model "
                      "trained elsewhere): cross-validate a run trained here with training.train.")
    command = CROSSVAL_COMMAND.format(run=shlex.quote(str(run_dir)))
    return why + f"`{command}` writes out-of-sample probabilities for them ({OOF_FILE})."


def has_training_recipe(run_dir: str | os.PathLike) -> bool:
    """Whether run.json holds the training config training.crossval repeats (training.train writes it; an
    import of predictions or of a model trained elsewhere does not)."""
    try:
        config = read_json(Path(run_dir) / RUN_FILE).get("config")
    except (ValueError, OSError, AttributeError):  # an unreadable or odd run.json: no recipe to repeat
        return False
    return isinstance(config, dict) and "dataset" in config and not is_imported_predictions(run_dir)


def read_oof(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """The run's cross-validated probabilities (OOF_FILE), None when it has none."""
    path = Path(run_dir) / OOF_FILE
    return pd.read_parquet(path) if path.exists() else None


def scopes(table: pd.DataFrame) -> list[str]:
    """What can be ranked: each split of an out_of_sample table (train, dev, test first), and all of them
    together when there are several."""
    order = {TRAIN: 0, "dev": 1, "test": 2}
    splits = sorted(table["split"].dropna().astype(str).unique(), key=lambda s: (order.get(s, 3), s))
    return splits + ([ALL_OUT_OF_SAMPLE] if len(splits) > 1 else [])


def agreeing_neighbours(rows: pd.DataFrame, predictions: pd.DataFrame, index, *, k: int = 10) -> pd.Series:
    """For each image of `rows` that the run evaluated: how many of its k nearest evaluated images (cosine
    over the run's embeddings, itself left out; emotion_core.neighbours) carry its given label. Indexed by
    image_id; an image without an embedding (a cross-validated training image of a run that did not evaluate
    train) is left out, and so is one whose embedding is all zeros (similar to nothing in particular).
    index: a NeighbourIndex of the run's embeddings (row i: cam_index i)."""
    from emotion_core.neighbours import rows_in_embedding_order

    by_row = rows_in_embedding_order(predictions, index)  # position i: the image of embedding row i
    position_of = pd.Series(np.arange(len(by_row)), index=by_row["image_id"].to_numpy())
    position_of = position_of[~position_of.index.duplicated(keep="last")]
    own_rows = position_of.reindex(rows["image_id"].to_numpy()).fillna(-1).astype(np.int64)  # -1: not evaluated
    label_of_row = by_row["label"].to_numpy()
    counts = {}
    for image_id, label, own in zip(rows["image_id"], rows["label"], own_rows):
        if own >= 0 and np.any(index.unit[own]):
            found, _ = index.query(index.unit[own], k, exclude=[own])  # (1, k)
            counts[image_id] = int((label_of_row[found[0]] == label).sum())
    return pd.Series(counts, dtype="int64")
