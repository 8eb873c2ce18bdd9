"""Sets of emotions from a threshold on the predicted distribution, covered errors, and the distance
between the predicted distribution and the votes (the gallery's sort, the inspector's line), all
checked against values worked out by hand on a few rows."""
import math

import numpy as np
import pandas as pd
import pytest

from emotion_core.confusion import SORT_KEYS, filter_and_sort
from emotion_core.labels import ClassSet
from emotion_core.multilabel import (AGREE_GAP_SORT, KL_SORT, coverage, coverage_sentence, emotion_sets,
                                     gap_sort_key, image_comparison, label_in_set, set_text, vote_gap)

ABC = ClassSet(names=("a", "b", "c"))


def table(rows: list[tuple]) -> pd.DataFrame:
    """(image_id, label, pred, p_a, p_b, p_c) rows as a predictions table."""
    frame = pd.DataFrame(rows, columns=["image_id", "label", "pred", "p_a", "p_b", "p_c"])
    frame["confidence"] = frame[["p_a", "p_b", "p_c"]].max(axis=1)
    return frame


# At τ = 0.3: i0 correct; i1 b → a covered (p_b 0.35); i2 c → a not covered (p_c 0.1); i3 b → c covered
# (p_b exactly 0.3: p ≥ τ counts).
FOUR = table([("i0", "a", "a", 0.6, 0.3, 0.1), ("i1", "b", "a", 0.5, 0.35, 0.15),
              ("i2", "c", "a", 0.7, 0.2, 0.1), ("i3", "b", "c", 0.3, 0.3, 0.4)])


def test_sets_hold_every_class_at_or_above_the_threshold_most_probable_first():
    assert emotion_sets(FOUR, ABC, 0.3).tolist() == [("a", "b"), ("a", "b"), ("a",), ("c", "a", "b")]
    assert set_text(("c", "a"), ABC) == "C + A"


def test_a_threshold_above_every_probability_leaves_the_top_class_and_zero_gives_every_class():
    assert emotion_sets(FOUR, ABC, 0.95).tolist() == [("a",), ("a",), ("a",), ("c",)]
    assert emotion_sets(FOUR, ABC, 1.0).tolist() == [("a",), ("a",), ("a",), ("c",)]
    assert [set(s) for s in emotion_sets(FOUR, ABC, 0.0)] == [{"a", "b", "c"}] * 4


def test_the_top_class_is_the_runs_prediction_even_when_a_probability_ties_it():
    tied = table([("t", "b", "b", 0.45, 0.45, 0.1)])  # pred b, a just as probable
    assert emotion_sets(tied, ABC, 0.9).tolist() == [("b",)]
    assert label_in_set(tied, ABC, 0.9).tolist() == [True]


def test_covered_errors_and_set_accuracy_by_hand():
    at = coverage(FOUR, ABC, 0.3)
    assert (at.images, at.errors, at.covered) == (4, 3, 2)
    assert at.top1_accuracy == pytest.approx(0.25) and at.set_accuracy == pytest.approx(0.75)
    assert at.mean_set_size == pytest.approx(2.0)  # 2 + 2 + 1 + 3
    top_only = coverage(FOUR, ABC, 0.95)
    assert (top_only.covered, top_only.set_accuracy, top_only.mean_set_size) == (0, pytest.approx(0.25), 1.0)
    everything = coverage(FOUR, ABC, 0.0)
    assert (everything.covered, everything.set_accuracy, everything.mean_set_size) == (3, 1.0, 3.0)
    assert label_in_set(FOUR, ABC, 0.3).tolist() == [True, True, False, True]


def test_the_coverage_sentence_names_the_cells_errors_and_keeps_accuracy_apart():
    cell = FOUR[(FOUR["label"] == "b") & (FOUR["pred"] == "a")]
    text = coverage_sentence(coverage(cell, ABC, 0.3), coverage(FOUR, ABC, 0.3), "b", "a", ABC)
    assert "τ = 0.30" in text and "covered errors: 1 of 1 B → A errors" in text, text
    assert "2 of 3 errors covered, set accuracy 75% (top-1 accuracy 25%, unchanged)" in text, text
    diagonal = coverage_sentence(coverage(FOUR[:1], ABC, 0.3), coverage(FOUR, ABC, 0.3), "a", "a", ABC)
    assert "covered errors:" not in diagonal and "set accuracy 75%" in diagonal


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_a_threshold_outside_0_1_is_a_one_line_error(bad):
    with pytest.raises(ValueError, match="threshold must be between 0 and 1"):
        coverage(FOUR, ABC, bad)


def test_a_prediction_outside_the_classes_or_a_missing_probability_is_a_clear_error():
    with pytest.raises(ValueError, match="'z' is not one of the classes"):
        emotion_sets(table([("x", "a", "z", 0.5, 0.3, 0.2)]), ABC, 0.3)
    with pytest.raises(ValueError, match="lack probability columns: p_c"):
        emotion_sets(FOUR.drop(columns="p_c"), ABC, 0.3)


def ldl_table() -> pd.DataFrame:
    """Vote counts for every class. KL(voted ‖ predicted) by hand:
    far:  q = (1/2, 1/2, 0), p = (1/4, 1/4, 1/2): 2 · 1/2 · ln 2 = ln 2 ≈ 0.693
    near: q = (1/2, 1/2, 0), p = (0.4, 0.5, 0.1): 1/2 ln(1.25) ≈ 0.112
    same: q = p = (0.6, 0.2, 0.2): 0
    none: no votes recorded: NaN, sorted last."""
    frame = table([("same", "a", "a", 0.6, 0.2, 0.2), ("none", "a", "a", 0.5, 0.25, 0.25),
                   ("far", "a", "c", 0.25, 0.25, 0.5), ("near", "b", "b", 0.4, 0.5, 0.1)])
    frame["votes_a"] = [3, None, 2, 2]
    frame["votes_b"] = [1, None, 2, 2]
    frame["votes_c"] = [1, None, 0, 0]
    return frame


def test_kl_gap_by_hand_and_the_gallery_sorts_the_largest_first():
    rows = ldl_table()
    assert gap_sort_key(rows) == KL_SORT
    gaps = vote_gap(rows, KL_SORT)
    assert gaps.tolist()[0] == pytest.approx(0.0, abs=1e-12) and math.isnan(gaps.tolist()[1])
    assert gaps.tolist()[2:] == pytest.approx([math.log(2), 0.5 * math.log(1.25)])
    assert filter_and_sort(rows, sort=KL_SORT)["image_id"].tolist() == ["far", "near", "same", "none"]
    # the other sorts are as they were
    assert filter_and_sort(rows)["image_id"].tolist() == ["same", "far", "near", "none"]  # 0.6, then 0.5s by id
    assert filter_and_sort(rows, sort=KL_SORT, confidence=(0.55, 1.0))["image_id"].tolist() == ["same"]


def fi_table() -> pd.DataFrame:
    """FI's agree/disagree on the label only: |p(label) − agree share| by hand:
    x: p(a) 0.6, 3/5 = 0.6 -> 0;  y: p(b) 0.2, 4/4 = 1 -> 0.8;  z: p(c) 0.5, 3/4 -> 0.25;  w: no votes."""
    frame = table([("x", "a", "a", 0.6, 0.3, 0.1), ("y", "b", "a", 0.7, 0.2, 0.1),
                   ("z", "c", "c", 0.2, 0.3, 0.5), ("w", "a", "a", 0.9, 0.05, 0.05)])
    frame["agree"] = pd.array([3, 4, 3, None], dtype="Int64")
    frame["disagree"] = pd.array([2, 0, 1, None], dtype="Int64")
    return frame


def test_agree_gap_on_fi_votes_by_hand_and_its_sort():
    rows = fi_table()
    assert gap_sort_key(rows) == AGREE_GAP_SORT
    gaps = vote_gap(rows, AGREE_GAP_SORT).tolist()
    assert gaps[:3] == pytest.approx([0.0, 0.8, 0.25]) and math.isnan(gaps[3])
    assert filter_and_sort(rows, sort=AGREE_GAP_SORT)["image_id"].tolist() == ["y", "z", "x", "w"]
    assert gap_sort_key(rows.drop(columns=["agree", "disagree"])) is None


def test_an_unknown_sort_lists_the_distance_sorts_too():
    with pytest.raises(ValueError, match="valid: .*KL, largest first"):
        filter_and_sort(FOUR, sort="nonsense")
    assert set(SORT_KEYS).isdisjoint({KL_SORT, AGREE_GAP_SORT})


def test_image_comparison_gives_both_distributions_or_the_agree_share():
    far = ldl_table().iloc[2]
    compared = image_comparison(far, ABC)
    assert compared.predicted.tolist() == pytest.approx([0.25, 0.25, 0.5])
    assert compared.voted.tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert "KL divergence ↓ 0.693" in compared.line and "Chebyshev ↓ 0.500" in compared.line, compared.line
    assert image_comparison(ldl_table().iloc[1], ABC) is None  # no votes at all

    y = image_comparison(fi_table().iloc[1], ABC)
    assert np.isnan(y.voted[[0, 2]]).all() and y.voted[1] == pytest.approx(1.0)
    assert y.voted_name == "agree share (label only)"
    assert "p(B) 20% vs agree share 100%" in y.line and "= 0.80" in y.line, y.line
    assert image_comparison(fi_table().iloc[3], ABC) is None


@pytest.mark.parametrize("value, expected", [("0.35", 0.35), ("0.33", 0.35), ("0.2", 0.2), ("0.96", 0.95),
                                             ("0.99", None), ("0", None), ("abc", None), (None, None), ("nan", None),
                                             ("inf", None), ("-inf", None), ("1e400", None), ("-1e400", None)])
def test_a_linked_threshold_is_a_step_of_the_slider_or_none(value, expected):
    """?tau= from a link: rounded to the slider's step; anything else (an infinity overflows the rounding) is no τ."""
    from pages.shared.multilabel_view import linked_threshold

    assert linked_threshold(value) == expected
