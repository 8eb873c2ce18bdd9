"""Votes mean the same everywhere: levels, groups, summaries, filters and missing counts."""
import pandas as pd
import pytest

from emotion_core.confusion import accuracy_by_agreement, accuracy_by_vote_group, cell_summary, filter_and_sort, \
    unanimous_only
from emotion_core.votes import (
    DISTRIBUTION_GROUP_LABELS,
    GROUP_LABELS,
    NO_VOTES,
    NON_UNANIMOUS,
    STRONGLY_DIVIDED,
    UNANIMOUS,
    agreement_level,
    distribution_columns,
    group_labels,
    holds_shares,
    images_in_group,
    in_group,
    missing_votes_note,
    vote_agreement,
    vote_distribution,
    vote_levels,
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


# ---- vote distributions (Flickr_LDL / Twitter_LDL counts, Emotion6 shares) -------------------------

MIKELS = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"]
# image -> (label, votes per class in MIKELS order, expected group, expected share)
LDL = {
    "unanimous": ("fear", [0, 0, 0, 0, 0, 0, 8, 0], UNANIMOUS, 1.0),
    "plurality": ("awe", [1, 0, 5, 1, 0, 0, 2, 0], NON_UNANIMOUS, 5 / 9),    # 5 vs 4 others: clear lead over 2
    "coin flip": ("awe", [0, 0, 5, 0, 0, 0, 4, 2], STRONGLY_DIVIDED, 5 / 11),  # 5 Awe vs 4 Fear
    "minority": ("sadness", [3, 3, 0, 0, 0, 0, 0, 2], STRONGLY_DIVIDED, 2 / 8),  # label behind the runner-up
    "majority": ("anger", [1, 6, 0, 0, 1, 0, 0, 0], NON_UNANIMOUS, 6 / 8),
    "all zero": ("anger", [0] * 8, NO_VOTES, None),
}


def ldl_frame() -> pd.DataFrame:
    """As the LDL importer writes it: votes_<class> counts, agree = the label's votes, disagree = the rest."""
    rows = []
    for image_id, (label, votes, _, _) in LDL.items():
        agree = votes[MIKELS.index(label)]
        rows.append({"image_id": image_id, "label": label, "pred": "awe", "confidence": 0.5,
                     "correct": label == "awe", "agree": agree, "disagree": sum(votes) - agree,
                     **{f"votes_{e}": v for e, v in zip(MIKELS, votes)}})
    frame = pd.DataFrame(rows)
    return frame.astype({c: "Int64" for c in frame if c.startswith("votes_") or c in ("agree", "disagree")})


def test_a_vote_distribution_gives_share_for_the_label_and_runner_up_groups():
    frame = with_votes(ldl_frame())
    expected = {image_id: case[2] for image_id, case in LDL.items()}
    assert dict(zip(frame["image_id"], frame["agreement_level"])) == expected
    shares = dict(zip(frame["image_id"], frame["agreement"]))
    for image_id, (*_, share) in LDL.items():
        assert shares[image_id] == pytest.approx(share) if share is not None else pd.isna(shares[image_id])
    # the same groups in every view: cell summary, gallery filter, agreement page, unanimous matrix
    assert cell_summary(frame) == {"images": 6, "non_unanimous": 4, "strongly_divided": 2, "unanimous": 1,
                                   "no_votes": 1}
    assert set(filter_and_sort(frame, votes=STRONGLY_DIVIDED)["image_id"]) == {"coin flip", "minority"}
    assert unanimous_only(frame)["image_id"].tolist() == ["unanimous"]
    groups = accuracy_by_vote_group(frame).set_index("votes")["images"]
    assert groups[DISTRIBUTION_GROUP_LABELS[STRONGLY_DIVIDED]] == 2
    assert groups[DISTRIBUTION_GROUP_LABELS[NON_UNANIMOUS]] == 4


def test_the_group_functions_read_the_distribution_over_agree_and_disagree():
    # 5 agree / 4 disagree is strongly divided for FI, but the 4 are spread over three classes
    frame = ldl_frame().set_index("image_id", drop=False)
    assert in_group(frame["agree"], frame["disagree"], STRONGLY_DIVIDED)["plurality"]  # FI's reading
    assert not images_in_group(frame, STRONGLY_DIVIDED)["plurality"]
    assert vote_levels(frame)["plurality"] == NON_UNANIMOUS
    assert vote_agreement(frame)["coin flip"] == pytest.approx(5 / 11)


def test_accuracy_by_agreement_bins_the_share_of_votes_for_the_label():
    table = accuracy_by_agreement(with_votes(ldl_frame()))
    assert table["votes"].tolist() == ["20–30%", "40–50%", "50–60%", "70–80%", "100%"]
    assert table["images"].tolist() == [1, 1, 1, 1, 1]
    assert table["accuracy"].tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]  # pred is awe: coin flip and plurality right


def test_a_row_without_a_complete_distribution_keeps_agree_and_disagree():
    frame = ldl_frame()
    frame.loc[frame["image_id"] == "plurality", "votes_anger"] = pd.NA  # one class not recorded
    fresh = with_votes(frame).set_index("image_id")
    assert fresh.loc["plurality", "agreement_level"] == STRONGLY_DIVIDED  # 5 agree / 4 disagree
    assert fresh.loc["coin flip", "agreement_level"] == STRONGLY_DIVIDED
    assert vote_distribution(fresh.loc["plurality"].to_dict() | {"label": "awe"}) is None
    assert vote_distribution(fresh.loc["majority"].to_dict() | {"label": "anger"})["anger"] == 6.0


EMOTION6 = ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]


def test_emotion6_probabilities_are_shares_of_votes():
    """No counts (agree/disagree empty): the probabilities are the vote shares; strongly divided when the
    label leads the runner-up by at most 0.1."""
    cases = {  # image -> (label, probabilities, expected group)
        "disgust/1": ("disgust", [0.133333, 0.7, 0, 0.0666667, 0.1, 0, 0], NON_UNANIMOUS),
        "joy/2": ("joy", [0, 0, 0, 1, 0, 0, 0], UNANIMOUS),
        "fear/3": ("fear", [0, 0, 0.45, 0, 0.4, 0.15, 0], STRONGLY_DIVIDED),
    }
    frame = pd.DataFrame([{"image_id": i, "label": label, "correct": True,
                           "agree": pd.NA, "disagree": pd.NA, **{f"votes_{e}": p for e, p in zip(EMOTION6, ps)}}
                          for i, (label, ps, _) in cases.items()])
    fresh = with_votes(frame)
    assert fresh["agreement_level"].tolist() == [case[2] for case in cases.values()]
    assert fresh["agreement"].round(4).tolist() == [0.7, 1.0, 0.45]
    assert missing_votes_note(fresh) is None  # the agreement page works on them
    assert accuracy_by_agreement(fresh)["votes"].tolist() == ["40–50%", "70–80%", "100%"]
    assert group_labels(fresh) is DISTRIBUTION_GROUP_LABELS and group_labels(votes_frame()) is GROUP_LABELS


def test_fi_votes_read_exactly_as_before_beside_a_distribution_free_table():
    frame = votes_frame()
    assert vote_levels(frame).tolist() == agreement_level(frame["agree"], frame["disagree"]).tolist()
    for group in (UNANIMOUS, NON_UNANIMOUS, STRONGLY_DIVIDED, NO_VOTES):
        assert images_in_group(frame, group).tolist() == in_group(frame["agree"], frame["disagree"], group).tolist()
    assert accuracy_by_agreement(with_votes(frame))["votes"].tolist() == ["6/11", "3/5", "4/5", "1/1", "5/5"]


# ---- counts or shares: one reading per table (review of issue 10) ---------------------------

def emotion6_frame(probabilities: dict[str, tuple[str, list[float]]]) -> pd.DataFrame:
    """A predictions-like Emotion6 table: float64 shares, p_<class> columns naming the run's classes."""
    return pd.DataFrame([{"image_id": i, "label": label, "pred": "joy", "confidence": 0.5, "correct": label == "joy",
                          "agree": pd.NA, "disagree": pd.NA, **{f"p_{e}": 1 / 7 for e in EMOTION6},
                          **{f"votes_{e}": p for e, p in zip(EMOTION6, ps)}}
                         for i, (label, ps) in probabilities.items()])


def test_a_one_hot_emotion6_image_shows_shares_like_the_rest_of_its_table():
    """All of an image's probability on one class (0, 0, 0, 1, ...) reads like one voter's count on its
    own; the table (fractional shares elsewhere, every row summing to 1) says it is a share."""
    from emotion_core.plots import vote_bars
    from pages.shared.gallery import vote_bar, votes_text

    frame = with_votes(emotion6_frame({"disgust/1": ("disgust", [0.133333, 0.7, 0, 0.0666667, 0.1, 0, 0]),
                                       "joy/2": ("joy", [0, 0, 0, 1.0, 0, 0, 0])}))
    assert holds_shares(frame) and holds_shares(frame.iloc[1:]) is False  # the one-hot row alone cannot tell
    one_hot = frame.iloc[1]
    text = votes_text(one_hot, shares=holds_shares(frame))
    assert text.startswith("votes 100% for Joy · 🟢 unanimous") and "of 1" not in text, text
    assert vote_bar(vote_distribution(one_hot), "joy", shares=True) == "Ang· Dis· Fea· **Joy█100%** Sad· Sur· Neu·"
    figure = vote_bars(vote_distribution(one_hot), "joy", shares=True)
    assert figure.layout.xaxis.title.text == "share of votes" and figure.data[0].text[3] == "100%"
    # LDL: counts, whatever the dtype that reached the table (Int64, or float after a gap)
    ldl = with_votes(ldl_frame())
    assert not holds_shares(ldl) and not holds_shares(ldl.astype({f"votes_{e}": "float64" for e in MIKELS}))
    one_voter = ldl.iloc[0].to_dict() | {f"votes_{e}": int(e == "fear") for e in MIKELS}
    assert votes_text(one_voter, shares=holds_shares(ldl)).startswith("votes 1 of 1 for Fear")


def test_only_the_runs_classes_are_a_distribution():
    """An extra votes_total column is not a class: the classes are the table's p_<class> columns (or given)."""
    frame = ldl_frame().set_index("image_id", drop=False)
    frame = frame.assign(votes_total=frame[[f"votes_{e}" for e in MIKELS]].sum(axis=1),
                         **{f"p_{e}": 1 / 8 for e in MIKELS})
    assert distribution_columns(frame) == [f"votes_{e}" for e in MIKELS]
    assert distribution_columns(frame.drop(columns=[f"p_{e}" for e in MIKELS]), classes=["awe", "fear"]) == \
        ["votes_awe", "votes_fear"]
    assert vote_agreement(frame)["coin flip"] == pytest.approx(5 / 11)  # not 5 / 22
    assert vote_levels(frame)["unanimous"] == UNANIMOUS
    assert "votes_total" not in vote_distribution(frame.loc["majority"])
    assert distribution_columns(pd.DataFrame(columns=["p_value", "votes_a", "votes_b"])) == ["votes_a", "votes_b"]


def test_shares_a_little_off_1_keep_their_tenth():
    """Emotion6 shares may sum to 1 ± 0.001 (the importer's check): 0.7 of 1.0005 is in 70–80%, not 60–70%."""
    frame = with_votes(emotion6_frame({"a": ("disgust", [0.1005, 0.7, 0.2, 0, 0, 0, 0]),
                                       "b": ("fear", [0.333333, 0, 0.666667, 0, 0, 0, 0]),  # 10 of 15
                                       "c": ("joy", [0, 0, 0, 1.0, 0, 0, 0])}))
    assert accuracy_by_agreement(frame)["votes"].tolist() == ["60–70%", "70–80%", "100%"]
