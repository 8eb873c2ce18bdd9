import numpy as np
import pandas as pd
import pytest

from emotion_core.confusion import (
    accuracy_by_agreement,
    cell_from_selection,
    filter_and_sort,
    largest_confusion,
    matrix,
    page_of,
    summary_sentence,
)
from emotion_core.votes import agreement, agreement_level


def test_selection_to_cell():
    event = {"selection": {"points": [{"x": "Sadness", "y": "Anger", "customdata": ["anger", "sadness"]}]}}
    assert cell_from_selection(event) == ("anger", "sadness")
    assert cell_from_selection({"selection": {"points": []}}) is None
    assert cell_from_selection(None) is None
    heatmap_point = {"selection": {"points": [{"x": "Sadness", "y": "Anger", "z": 3}]}}  # no customdata
    assert cell_from_selection(heatmap_point) is None
    assert cell_from_selection({"selection": {"points": [{"customdata": ["happy", "sad"]}]}}) is None


def predictions_frame() -> pd.DataFrame:
    frame = pd.DataFrame({
        "image_id": list("abcdef"),
        "label_idx": [1, 1, 1, 7, 7, 1], "pred_idx": [7, 7, 1, 7, 3, 7],
        "confidence": [0.9, 0.5, 0.8, 0.7, 0.6, 0.3],
        "agree": pd.array([5, 3, 4, 3, pd.NA, 4], dtype="Int64"),
        "disagree": pd.array([0, 2, 1, 2, pd.NA, 1], dtype="Int64")})
    names = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"]
    frame["label"] = [names[i] for i in frame["label_idx"]]
    frame["pred"] = [names[i] for i in frame["pred_idx"]]
    frame["correct"] = frame["label_idx"] == frame["pred_idx"]
    frame["agreement"] = agreement(frame["agree"], frame["disagree"])
    frame["agreement_level"] = agreement_level(frame["agree"], frame["disagree"])
    return frame


def test_matrix_views():
    frame = predictions_frame()
    counts = matrix(frame)
    assert counts[1, 7] == 3 and counts.sum() == 6
    np.testing.assert_allclose(matrix(frame, "row-normalised").sum(1)[[1, 7]], [1, 1])
    np.testing.assert_allclose(matrix(frame, "column-normalised")[:, 7].sum(), 1)
    assert largest_confusion(frame) == ("anger", "sadness")
    with pytest.raises(ValueError, match="valid: counts"):
        matrix(frame, "log")


def test_filter_sort_and_pages():
    rows = predictions_frame().query("label == 'anger' and pred == 'sadness'")
    assert filter_and_sort(rows)["image_id"].tolist() == ["a", "b", "f"]
    assert filter_and_sort(rows, sort="agreement (low first)")["image_id"].tolist() == ["b", "f", "a"]
    assert filter_and_sort(rows, votes="unanimous")["image_id"].tolist() == ["a"]
    assert filter_and_sort(rows, votes="non-unanimous")["image_id"].tolist() == ["b", "f"]  # b: strongly divided
    assert filter_and_sort(rows, votes="strongly divided")["image_id"].tolist() == ["b"]
    assert filter_and_sort(rows, confidence=(0.4, 0.95))["image_id"].tolist() == ["a", "b"]
    assert filter_and_sort(rows, only_ids={"f"})["image_id"].tolist() == ["f"]
    assert page_of(filter_and_sort(rows), 2, 2)["image_id"].tolist() == ["f"]
    assert page_of(filter_and_sort(rows), 9, 2)["image_id"].tolist() == ["f"]  # clamped to the last page


def test_summary_sentence_and_agreement_levels():
    frame = predictions_frame()
    assert frame["agreement_level"].tolist() == ["unanimous", "strongly divided", "non-unanimous",
                                                  "strongly divided", "no votes", "non-unanimous"]
    summary = {"images": 16, "non_unanimous": 11, "strongly_divided": 7, "unanimous": 5, "no_votes": 0}
    assert summary_sentence("anger", "sadness", summary) == \
        "Anger → Sadness: 16 images, 11 non-unanimous votes (7 of them strongly divided)"
    assert summary_sentence("anger", "sadness", {**summary, "images": 18, "no_votes": 2}) == \
        "Anger → Sadness: 18 images, 11 non-unanimous votes (7 of them strongly divided), 2 without votes"
    by_votes = accuracy_by_agreement(frame)
    assert by_votes["votes"].tolist() == ["3/5", "4/5", "5/5"]
    assert by_votes["accuracy"].tolist() == [0.5, 0.5, 0.0]


def test_votes_are_read_not_assumed_five():
    agree, disagree = pd.Series([2, 6]), pd.Series([1, 1])
    assert agreement_level(agree, disagree).tolist() == ["strongly divided", "non-unanimous"]
    assert agreement(agree, disagree).round(3).tolist() == [0.667, 0.857]
