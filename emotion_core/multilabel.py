"""What a run's predicted distribution says beyond its top class: sets of emotions and how far it is
from the annotators' votes.

The study's future work: "many of the misclassified images clearly evoked several emotions". A
threshold τ on the predicted distribution gives every image a set of emotions:

    set(image) = {top class} ∪ {c : p(c) ≥ τ}

The top class is the run's prediction (`pred`), always in the set, so τ above every probability
leaves the top class alone and τ = 0 gives every class. Because the top class is always a member,
set accuracy (the label in the set) is never below top-1 accuracy; an error whose label is in the
set is "covered". Covered errors and set accuracy are reported beside accuracy, never instead of it.

The gallery can also sort a cell by how far the predicted distribution is from the votes
(GAP_SORT_KEYS): KL(voted ‖ predicted) where the table has vote distributions (LDL, Emotion6), or
|p(label) − agree share| where it has FI's agree/disagree votes only (FI's votes say nothing about the
other classes, so no distance over the whole distribution is honest there).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from emotion_core.labels import ClassSet
from emotion_core.ldl_metrics import (MEASURES, distances, label_probabilities, measure_label, per_image,
                                      predicted_distributions, voted_distributions)
from emotion_core.votes import PROBABILITY_PREFIX, has_distribution, vote_agreement

DEFAULT_THRESHOLD = 0.2
KL_SORT = "distance predicted ↔ voted distribution (KL, largest first)"
AGREE_GAP_SORT = "|p(label) − agree share| (largest first)"
GAP_SORT_KEYS = (KL_SORT, AGREE_GAP_SORT)


def _checked_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:  # NaN fails this too
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    return threshold


def probability_matrix(predictions: pd.DataFrame, classes: ClassSet) -> np.ndarray:
    """(N, C) float: the p_<class> columns in the class set's order."""
    columns = [PROBABILITY_PREFIX + name for name in classes.names]
    missing = [c for c in columns if c not in predictions]
    if missing:
        raise ValueError(f"the predictions lack probability columns: {', '.join(missing)}")
    return predictions[columns].to_numpy(dtype=float)


def _top_positions(predictions: pd.DataFrame, classes: ClassSet) -> np.ndarray:
    """(N,) int: each image's predicted class as a column of probability_matrix."""
    positions = class_positions(predictions["pred"], classes)
    if (positions < 0).any():
        unknown = predictions["pred"].iloc[int(np.argmax(positions < 0))]
        raise ValueError(f"predicted class {unknown!r} is not one of the classes: {', '.join(classes.names)}")
    return positions


def class_positions(names: pd.Series, classes: ClassSet) -> np.ndarray:
    """(N,) int: each class id's position in the class set, -1 for one outside it or missing. The few
    distinct names are looked up once (a Series.map over 118,000 Arrow strings costs 0.1 s)."""
    codes, distinct = pd.factorize(names)  # codes -1: missing
    positions = pd.Index(classes.names).get_indexer(distinct)
    return np.where(codes >= 0, positions[codes], -1) if len(distinct) else np.full(len(names), -1)


def set_membership(predictions: pd.DataFrame, classes: ClassSet, threshold: float) -> np.ndarray:
    """(N, C) bool: class c is in image n's set (p(c) ≥ threshold, or c is the predicted class)."""
    threshold = _checked_threshold(threshold)
    members = probability_matrix(predictions, classes) >= threshold
    members[np.arange(len(predictions)), _top_positions(predictions, classes)] = True
    return members


def emotion_sets(predictions: pd.DataFrame, classes: ClassSet, threshold: float) -> pd.Series:
    """Each image's set as a tuple of class ids, most probable first (ties in the class set's order)."""
    members = set_membership(predictions, classes, threshold)
    probabilities = probability_matrix(predictions, classes)
    order = np.argsort(-probabilities, axis=1, kind="stable")  # (N, C) columns, most probable first
    sets = [tuple(classes.names[c] for c in row_order if row_members[c])
            for row_order, row_members in zip(order, members)]
    return pd.Series(sets, index=predictions.index, dtype="object")


def label_in_set(predictions: pd.DataFrame, classes: ClassSet, threshold: float) -> pd.Series:
    """Bool per image: its label is in its set (every correct prediction is)."""
    return pd.Series(_label_in(set_membership(predictions, classes, threshold), predictions, classes),
                     index=predictions.index, dtype=bool)


def _label_in(members: np.ndarray, predictions: pd.DataFrame, classes: ClassSet) -> np.ndarray:
    labels = class_positions(predictions["label"], classes)
    known = labels >= 0
    inside = np.zeros(len(predictions), dtype=bool)
    inside[known] = members[np.nonzero(known)[0], labels[known]]
    return inside


@dataclass(frozen=True)
class Coverage:
    """How the sets at one threshold read on a table of predictions."""
    threshold: float
    images: int
    errors: int            # top-1 errors (label ≠ pred)
    covered: int           # errors whose label is in the set
    top1_accuracy: float   # NaN for no images
    set_accuracy: float    # label in the set; ≥ top1_accuracy
    mean_set_size: float


def coverage(predictions: pd.DataFrame, classes: ClassSet, threshold: float) -> Coverage:
    """Top-1 errors, covered errors, both accuracies and the mean set size of the table."""
    members = set_membership(predictions, classes, threshold)
    inside = _label_in(members, predictions, classes)
    wrong = class_positions(predictions["label"], classes) != _top_positions(predictions, classes)
    images = len(predictions)
    sizes = members.sum(axis=1)
    return Coverage(threshold=_checked_threshold(threshold), images=images, errors=int(wrong.sum()), covered=int((wrong & inside).sum()),
                    top1_accuracy=float(1 - wrong.mean()) if images else float("nan"),
                    set_accuracy=float(inside.mean()) if images else float("nan"),
                    mean_set_size=float(sizes.mean()) if images else float("nan"))


def coverage_sentence(in_cell: Coverage, whole: Coverage, true: str, pred: str, classes: ClassSet) -> str:
    """'Sets at τ = 0.20 (every class with p ≥ τ, always the top class): covered errors: 12 of 40 Anger →
    Sadness errors; over the split 25 of 120 errors covered, set accuracy 68% (top-1 accuracy 55%,
    unchanged), 1.6 emotions per image on average'. in_cell: the cell's coverage, whole: the split's."""
    text = f"Sets at τ = {whole.threshold:.2f} (every class with p ≥ τ, always the top class): "
    if true != pred:
        text += (f"covered errors: {in_cell.covered} of {in_cell.errors} {classes.display_name(true)} → "
                 f"{classes.display_name(pred)} errors; ")
    if not whole.images:
        return text + "no images in the split."
    return (text + f"over the split {whole.covered} of {whole.errors} errors covered, set accuracy "
            f"{whole.set_accuracy:.0%} (top-1 accuracy {whole.top1_accuracy:.0%}, unchanged), "
            f"{whole.mean_set_size:.1f} emotions per image on average")


@dataclass(frozen=True)
class ImageComparison:
    """One image's predicted distribution beside its votes, as the inspector shows them."""
    predicted: np.ndarray  # (C,) class set order
    voted: np.ndarray      # (C,) voted shares; FI: NaN but for the label's agree share
    voted_name: str        # what `voted` holds, for the legend
    line: str              # the distances in one line


def image_comparison(row: pd.Series, classes: ClassSet) -> ImageComparison | None:
    """The image's vote distribution (LDL, Emotion6) with the six LDL measures, else its agree share
    (FI) with |p(label) − agree share|; None for an image without votes."""
    frame = row.to_frame().T  # one row: the table functions apply
    predicted = predicted_distributions(frame, classes)[0]
    voted = voted_distributions(frame, classes)
    if voted is not None and np.isfinite(voted[0]).all():
        measures = per_image(predicted[None, :], voted).iloc[0]
        line = " · ".join(f"{measure_label(m)} {measures[m]:.3f}" for m in MEASURES)
        return ImageComparison(predicted, voted[0], "voted share", f"Predicted vs voted: {line}")
    share = float(vote_agreement(frame).iloc[0])
    if np.isnan(share) or row["label"] not in classes:
        return None
    position = classes.index[row["label"]]
    voted = np.full(len(classes), np.nan)
    voted[position] = share
    name = classes.display_name(row["label"])
    line = (f"p({name}) {predicted[position]:.0%} vs agree share {share:.0%}: "
            f"|p(label) − agree share| = {abs(predicted[position] - share):.2f} (FI's votes cover the label only)")
    return ImageComparison(predicted, voted, "agree share (label only)", line)


def set_text(emotions: tuple[str, ...], classes: ClassSet) -> str:
    """'Anger + Sadness': a set as a card shows it."""
    return " + ".join(classes.display_name(e) for e in emotions)


def table_classes(rows: pd.DataFrame) -> ClassSet:
    """The class set a predictions table names in its p_<class> columns (table order = the run's order)."""
    return ClassSet(names=tuple(c[len(PROBABILITY_PREFIX):] for c in rows.columns
                                if isinstance(c, str) and c.startswith(PROBABILITY_PREFIX)))


def gap_sort_key(predictions: pd.DataFrame) -> str | None:
    """The distance sort the table allows: KL_SORT with vote distributions, AGREE_GAP_SORT with FI's
    agree/disagree votes only, None without votes."""
    if has_distribution(predictions):
        return KL_SORT
    return AGREE_GAP_SORT if vote_agreement(predictions).notna().any() else None


def vote_gap(rows: pd.DataFrame, sort: str) -> pd.Series:
    """Per image, how far the predicted distribution is from the votes (NaN without usable votes):
    KL_SORT: KL(voted ‖ predicted) over the classes (ldl_metrics.per_image's kl: the votes are the
    reference, p clipped at 1e-12); AGREE_GAP_SORT: |p(label) − agree share|."""
    if sort not in GAP_SORT_KEYS:
        raise ValueError(f"unknown distance sort {sort!r}; valid: {', '.join(GAP_SORT_KEYS)}")
    classes = table_classes(rows)
    if sort == AGREE_GAP_SORT:
        label_p = pd.Series(label_probabilities(rows, classes), index=rows.index)
        return (label_p - vote_agreement(rows)).abs()
    per = distances(rows, classes)
    return pd.Series(np.nan, index=rows.index, dtype="float64") if per is None else per["kl"]
