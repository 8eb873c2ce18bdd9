"""Confusion-matrix cells: selection mapping, cell summaries, gallery rows, agreement views."""
from __future__ import annotations

from typing import Any, Collection, Mapping

import numpy as np
import pandas as pd

from emotion_core.dataset_attributes import filter_mask, range_mask
from emotion_core.labels import FI_CLASSES, ClassSet
from emotion_core.metrics import confusion_matrix
from emotion_core.multilabel import GAP_SORT_KEYS, vote_gap
from emotion_core.report import Column
from emotion_core.votes import (
    NO_VOTES,
    NON_UNANIMOUS,
    STRONGLY_DIVIDED,
    SHARE_TOLERANCE,
    UNANIMOUS,
    VOTE_GROUPS,
    group_counts,
    group_labels,
    has_distribution,
    holds_shares,
    images_in_group,
    tally,
    vote_agreement,
)

MATRIX_VIEWS = ("counts", "row-normalised", "column-normalised")
SORT_KEYS = ("confidence (high first)", "confidence (low first)", "agreement (low first)", "agreement (high first)")
ALL_VOTES = "all images"
VOTE_FILTERS = (ALL_VOTES,) + VOTE_GROUPS  # the gallery's vote filter: one group (or all) at a time
# How the dashboard shows accuracy_by_vote_group (emotion_core.report.format_table)
VOTE_GROUP_COLUMNS = {"votes": Column("Votes"), "images": Column("Images", "count"),
                      "accuracy": Column("Accuracy", "percent")}


def cell_from_selection(selection: Mapping[str, Any] | None, *,
                        classes: ClassSet = FI_CLASSES) -> tuple[str, str] | None:
    """(true, pred) emotion ids of the clicked matrix cell, or None.

    Reads the points of st.plotly_chart's selection event; each cell marker carries
    customdata [true, pred].
    """
    if not selection:
        return None
    points = (selection.get("selection") or {}).get("points") or []
    for point in points:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)) and len(data) >= 2 and data[0] in classes and data[1] in classes:
            return str(data[0]), str(data[1])
    return None


def matrix(predictions: pd.DataFrame, view: str = "counts", *, classes: ClassSet = FI_CLASSES) -> np.ndarray:
    """The confusion matrix, optionally normalised by row (recall) or column (precision)."""
    if view not in MATRIX_VIEWS:
        raise ValueError(f"unknown view {view!r}; valid: {', '.join(MATRIX_VIEWS)}")
    counts = confusion_matrix(predictions["label_idx"], predictions["pred_idx"], len(classes)).astype(float)
    if view == "row-normalised":
        return np.divide(counts, counts.sum(1, keepdims=True), out=np.zeros_like(counts), where=counts.sum(1, keepdims=True) > 0)
    if view == "column-normalised":
        return np.divide(counts, counts.sum(0, keepdims=True), out=np.zeros_like(counts), where=counts.sum(0, keepdims=True) > 0)
    return counts


def largest_confusion(predictions: pd.DataFrame, *, classes: ClassSet = FI_CLASSES) -> tuple[str, str]:
    """The off-diagonal cell with most images (the first one if there are no errors)."""
    counts = confusion_matrix(predictions["label_idx"], predictions["pred_idx"], len(classes))
    np.fill_diagonal(counts, -1)
    i, j = np.unravel_index(int(np.argmax(counts)), counts.shape)
    return classes.names[i], classes.names[j]


def cell_rows(predictions: pd.DataFrame, true: str, pred: str) -> pd.DataFrame:
    return predictions[(predictions["label"] == true) & (predictions["pred"] == pred)]


def cell_summary(rows: pd.DataFrame) -> dict[str, int]:
    """Images of a cell per vote group; non_unanimous includes strongly_divided."""
    counts = group_counts(rows)
    return {"images": len(rows), "non_unanimous": counts[NON_UNANIMOUS],
            "strongly_divided": counts[STRONGLY_DIVIDED], "unanimous": counts[UNANIMOUS],
            "no_votes": counts[NO_VOTES]}


def summary_sentence(true: str, pred: str, summary: Mapping[str, int], *, classes: ClassSet = FI_CLASSES) -> str:
    """'Anger → Sadness: 16 images, 11 non-unanimous votes (7 of them strongly divided)'."""
    noun = "image" if summary["images"] == 1 else "images"
    text = (f"{classes.display_name(true)} → {classes.display_name(pred)}: {summary['images']} {noun}, "
            f"{summary['non_unanimous']} non-unanimous votes ({summary['strongly_divided']} of them strongly divided)")
    if summary.get("no_votes"):
        text += f", {summary['no_votes']} without votes"
    return text


def filter_and_sort(rows: pd.DataFrame, *, votes: str = ALL_VOTES,
                    confidence: tuple[float, float] = (0.0, 1.0), sort: str = SORT_KEYS[0],
                    only_ids: set[str] | None = None,
                    attributes: Mapping[str, Collection[str]] | None = None,
                    ranges: Mapping[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """Gallery rows: one vote group (or all images; non-unanimous includes strongly divided),
    confidence range (inclusive), only_ids (e.g. the images with some tags) when given, dataset
    attributes ({'attr_scene': ['graveyard'], 'attr_object': ['Sky']}: one of the values of each
    attribute named) when given, numeric dataset attributes within ranges ({'attr_brightness':
    (0.2, 0.5)}, inclusive; an image without the value is left out) when given, sort order (SORT_KEYS,
    or multilabel.GAP_SORT_KEYS: largest distance between predicted and voted first, no votes last)."""
    if sort not in SORT_KEYS + GAP_SORT_KEYS:
        raise ValueError(f"unknown sort {sort!r}; valid: {', '.join(SORT_KEYS + GAP_SORT_KEYS)}")
    if votes not in VOTE_FILTERS:
        raise ValueError(f"unknown vote filter {votes!r}; valid: {', '.join(VOTE_FILTERS)}")
    keep = rows["confidence"].between(confidence[0], confidence[1])
    if votes != ALL_VOTES:
        keep &= images_in_group(rows, votes)
    if only_ids is not None:
        keep &= rows["image_id"].isin(only_ids)
    if attributes and any(attributes.values()):  # list columns are scanned only when a filter asks
        keep &= filter_mask(rows, attributes)
    if ranges:
        keep &= range_mask(rows, ranges)
    if sort in GAP_SORT_KEYS:
        kept = rows[keep]
        order = pd.DataFrame({"gap": vote_gap(kept, sort).to_numpy(), "image_id": kept["image_id"].to_numpy()})
        return kept.iloc[order.sort_values(["gap", "image_id"], ascending=[False, True], na_position="last",
                                          kind="stable").index]
    column = "confidence" if sort.startswith("confidence") else "agreement"
    ascending = "low first" in sort
    return rows[keep].sort_values([column, "image_id"], ascending=[ascending, True], na_position="last",
                                  kind="stable")


def page_of(rows: pd.DataFrame, page: int, per_page: int) -> pd.DataFrame:
    pages = max(1, -(-len(rows) // per_page))
    page = min(max(page, 1), pages)
    return rows.iloc[(page - 1) * per_page: page * per_page]


def accuracy_by_agreement(predictions: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per vote-agreement value, images without votes left out: FI's agree/total counts
    (e.g. 3/5, 4/5, 5/5); where the table has vote distributions (LDL, Emotion6: as many voters
    as an image happened to get, or shares), the share of votes for the label in tenths
    ('50–60%', ..., '100%'). Columns: votes (the value's name), images, accuracy, agreement."""
    counted = tally(predictions)
    voted, share = counted.total > 0, vote_agreement(predictions).to_numpy()
    frame = pd.DataFrame({"correct": predictions["correct"].to_numpy()[voted], "agreement": share[voted]})
    if has_distribution(predictions):
        # shares may sum to 1 ± SHARE_TOLERANCE (0.7 of 1.0005 is 0.69965): no tenth loses such a share
        tolerance = SHARE_TOLERANCE if holds_shares(predictions) else 1e-9
        tenth = np.minimum(np.floor((frame["agreement"] + tolerance) * 10), 10).astype(int)
        frame["agreement"] = tenth / 10  # the bin's lower edge: the sort key
        names = tenth.map(lambda k: "100%" if k == 10 else f"{10 * k}–{10 * k + 10}%")
    else:
        names = (pd.Series(counted.label[voted]).astype(int).astype(str) + "/" +
                 pd.Series(counted.total[voted]).astype(int).astype(str))
    result = frame.groupby(names.to_numpy()).agg(images=("correct", "size"), accuracy=("correct", "mean"),
                                                 agreement=("agreement", "first")).reset_index(names="votes")
    return result.sort_values(["agreement", "votes"]).reset_index(drop=True)


def accuracy_by_vote_group(predictions: pd.DataFrame) -> pd.DataFrame:
    """Images and accuracy per vote group (the groups overlap: non-unanimous includes strongly divided),
    the groups named in the words of the table's votes (votes.group_labels)."""
    rows, labels = [], group_labels(predictions)
    for group in VOTE_GROUPS:
        correct = predictions.loc[images_in_group(predictions, group), "correct"]
        rows.append({"votes": labels[group], "images": len(correct),
                     "accuracy": float(correct.mean()) if len(correct) else float("nan")})
    return pd.DataFrame(rows)


def unanimous_only(predictions: pd.DataFrame) -> pd.DataFrame:
    """The images every voter gave their label (FI: no disagree vote; a distribution: no other class)."""
    return predictions[images_in_group(predictions, UNANIMOUS)]
