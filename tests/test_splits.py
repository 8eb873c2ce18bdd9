import pandas as pd
import pytest

from emotion_core.splits import parse_split_spec, stratified_split


def test_split_is_stratified_seeded_and_sized():
    labels = pd.Series(["anger"] * 200 + ["awe"] * 1000)
    split = stratified_split(labels, parse_split_spec("90/5/5"), seed=3)
    counts = pd.crosstab(labels, split)
    assert counts.loc["anger"].to_dict() == {"dev": 10, "test": 10, "train": 180}
    assert counts.loc["awe"].to_dict() == {"dev": 50, "test": 50, "train": 900}
    assert split.equals(stratified_split(labels, parse_split_spec("90/5/5"), seed=3))
    assert not split.equals(stratified_split(labels, parse_split_spec("90/5/5"), seed=4))


def test_community_split_and_bad_spec():
    labels = pd.Series(["fear"] * 100)
    assert stratified_split(labels, parse_split_spec("80/5/15"), seed=0).value_counts().to_dict() == \
        {"train": 80, "test": 15, "dev": 5}
    with pytest.raises(ValueError, match="three numbers"):
        parse_split_spec("90/10")
