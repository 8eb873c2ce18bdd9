"""Votes mean the same everywhere: levels, groups, summaries, filters and missing counts."""
import pandas as pd
import pytest

from emotion_core.confusion import accuracy_by_agreement, accuracy_by_vote_group, cell_summary, filter_and_sort, \
    unanimous_only
from emotion_core.votes import (
    GROUP_LABELS,
    NO_VOTES,
    NON_UNANIMOUS,
    STRONGLY_DIVIDED,
    UNANIMOUS,
    agreement_level,
    in_group,
    missing_votes_note,
    votes_description,
    with_votes,
)

# agree/disagree -> (most specific level, unanimous, non-unanimous, strongly divided, no votes)
CASES = {
    (5, 0): (UNANIMOUS, True, False, False, False),
    (1, 0): (UNANIMOUS, True, False, False, False),
    (4, 1): (NON_UNANIMOUS, False, True, False, False),
    (3, 2): (STRONGLY_DIVIDED, False, True, True, False),
    (6, 5): (STRONGLY_DIVIDED, False, True, True, False),
    (0, 0): (NO_VOTES, False, False, False, True),
    (3, None): (NO_VOTES, False, False, False, True),
    (None, 2): (NO_VOTES, False, False, False, True),
    (None, None): (NO_VOTES, False, False, False, True),
}


def votes_frame() -> pd.DataFrame:
    agree = pd.array([a for a, _ in CASES], dtype="Int64")
    disagree = pd.array([d for _, d in CASES], dtype="Int64")
    return pd.DataFrame({"image_id": [f"i{n}" for n in range(len(CASES))], "agree": agree, "disagree": disagree,
                         "confidence": 0.5, "correct": [True, False] * 4 + [True], "label": "anger",
                         "pred": "sadness"})


def test_zero_votes_are_no_votes_never_unanimous():
    frame = votes_frame()
    assert agreement_level(frame["agree"], frame["disagree"]).tolist() == [c[0] for c in CASES.values()]
    for column, group in enumerate((UNANIMOUS, NON_UNANIMOUS, STRONGLY_DIVIDED, NO_VOTES), start=1):
        assert in_group(frame["agree"], frame["disagree"], group).tolist() == [c[column] for c in CASES.values()]
    assert "i5" not in set(unanimous_only(frame)["image_id"])  # 0 agree / 0 disagree


def test_non_unanimous_is_one_definition_everywhere():
    frame = with_votes(votes_frame())
    expected = {f"i{n}" for n, (a, d) in enumerate(CASES) if a is not None and d is not None and a + d > 0 and d > 0}
    summary = cell_summary(frame)
    shown = set(filter_and_sort(frame, votes=NON_UNANIMOUS)["image_id"])
    groups = accuracy_by_vote_group(frame).set_index("votes")["images"]
    assert shown == expected
    assert summary["non_unanimous"] == groups[GROUP_LABELS[NON_UNANIMOUS]] == len(expected) == 3
    assert summary["strongly_divided"] == groups[GROUP_LABELS[STRONGLY_DIVIDED]] == 2
    assert set(filter_and_sort(frame, votes=STRONGLY_DIVIDED)["image_id"]) <= shown  # a subset
    assert summary["unanimous"] == 2 and summary["no_votes"] == 4
    assert "includes strongly divided" in GROUP_LABELS[NON_UNANIMOUS]


def test_unknown_vote_filter_lists_the_choices():
    with pytest.raises(ValueError, match="valid: all images, unanimous, non-unanimous"):
        filter_and_sort(votes_frame(), votes="divided")


@pytest.mark.parametrize("missing", ["agree", "disagree"])
def test_a_table_with_one_vote_column_reads_as_no_votes(missing):
    frame = with_votes(votes_frame().drop(columns=missing).assign(agreement_level=UNANIMOUS))
    assert frame[missing].isna().all() and frame[missing].dtype == "Int64"
    assert set(frame["agreement_level"]) == {NO_VOTES} and frame["agreement"].isna().all()
    assert cell_summary(frame) == {"images": 9, "non_unanimous": 0, "strongly_divided": 0, "unanimous": 0,
                                   "no_votes": 9}
    assert accuracy_by_agreement(frame).empty
    kept = "disagree" if missing == "agree" else "agree"
    assert missing_votes_note(frame) == (f"This dataset records {kept} votes but no {missing} votes, "
                                         "so agreement cannot be computed.")


def test_stale_levels_are_recomputed_from_the_counts():
    frame = votes_frame().assign(agreement_level=UNANIMOUS, agreement=1.0)  # as an older EmoLens wrote 0/0
    fresh = with_votes(frame)
    assert fresh.loc[fresh["image_id"] == "i5", "agreement_level"].item() == NO_VOTES
    assert pd.isna(fresh.loc[fresh["image_id"] == "i5", "agreement"].item())


def test_votes_in_words():
    assert votes_description(3, 2) == "3 agree / 2 disagree"
    assert votes_description(0, 0) == "0 agree / 0 disagree"
    assert votes_description(3, pd.NA) == "3 agree, disagree not recorded"
    assert votes_description(None, 2) == "2 disagree, agree not recorded"
    assert votes_description(pd.NA, float("nan")) == "no votes"
    assert missing_votes_note(with_votes(votes_frame())) is None
    assert "no agree/disagree votes" in missing_votes_note(with_votes(votes_frame().drop(columns=["agree", "disagree"])))
