import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import false_discovery_control, fisher_exact

from emotion_core.attributes import read_attributes
from emotion_core.demo_data import PLANTED
from emotion_core.trends import (
    AUTO,
    TAG,
    benjamini_hochberg,
    cell_paragraph,
    cell_trend_table,
    cells_csv,
    discover,
    image_features,
    markdown_report,
    standouts,
)


def test_benjamini_hochberg_worked_example():
    # sorted p: 0.005, 0.01, 0.03, 0.04 -> p*m/rank: 0.02, 0.02, 0.04, 0.04 (monotone from the top)
    np.testing.assert_allclose(benjamini_hochberg([0.01, 0.04, 0.03, 0.005]), [0.02, 0.04, 0.04, 0.02])
    p = np.random.default_rng(0).random(200) ** 3
    np.testing.assert_allclose(benjamini_hochberg(p), false_discovery_control(p, method="bh"))


def toy_predictions() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Anger -> Sadness: 10 images, 7 monochrome; 20 correct Anger images, 2 monochrome."""
    rows = [("c%d" % i, "anger", "sadness", i < 7) for i in range(10)]
    rows += [("r%d" % i, "anger", "anger", i < 2) for i in range(20)]
    frame = pd.DataFrame(rows, columns=["image_id", "label", "pred", "monochrome"])
    frame["correct"] = frame["label"] == frame["pred"]
    frame["agree"], frame["disagree"] = 3, 2
    frame["agreement_level"] = "strongly divided"
    attributes = frame[["image_id", "monochrome"]].assign(warm=False, has_face=False, has_cat_face=False)
    return frame.drop(columns="monochrome"), attributes


def test_cell_table_against_scipy():
    predictions, attributes = toy_predictions()
    tags = pd.DataFrame({"image_id": ["c0", "c1", "r0"], "tag": ["graveyard"] * 3})
    features = image_features(predictions, attributes, tags)
    table = cell_trend_table(predictions, features, "anger", "sadness").set_index("feature")
    row = table.loc["auto: monochrome"]
    assert (row["in_cell"], row["in_reference"]) == (7, 2)
    assert row["cell_share"] == pytest.approx(0.7) and row["lift"] == pytest.approx(0.7 / 0.1)
    assert row["p_value"] == pytest.approx(fisher_exact([[7, 3], [2, 18]], alternative="greater")[1])
    assert table.loc["tag: graveyard", "in_cell"] == 2


def test_markdown_numbers_match_the_table():
    predictions, attributes = toy_predictions()
    features = image_features(predictions, attributes)
    table = cell_trend_table(predictions, features, "anger", "sadness")
    text = cell_paragraph(predictions, features, "anger", "sadness", table)
    assert text.startswith("**Anger misclassified as Sadness:** Out of the 10 misclassified, 10 have a "
                           "non-unanimous vote and 10 a strongly divided vote.")
    row = table.set_index("feature").loc["auto: monochrome"]
    assert (f" {int(row['in_cell'])} are monochrome (automatic) ({row['cell_share']:.0%}, vs "
            f"{row['reference_share']:.0%} of the 20 correctly classified Anger images; "
            f"Fisher p = {row['p_value']:.2g}).") in text
    csv = cells_csv(predictions, features, [("anger", "sadness")])
    assert csv.loc[csv["feature"] == "auto: monochrome", "in_cell"].item() == 7
    assert markdown_report(predictions, features, [("anger", "sadness")]).count("misclassified as") == 1


def test_a_class_without_correct_images_gets_no_nan_in_its_paragraph():
    predictions, attributes = toy_predictions()
    wrong = ~predictions["correct"]  # only the misclassified Anger images are left
    predictions, attributes = predictions[wrong], attributes[wrong]
    features = image_features(predictions, attributes)
    text = cell_paragraph(predictions, features, "anger", "sadness")
    assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE)
    assert "7 are monochrome (automatic) (70%, no Anger image of this split is correctly classified" in text


def researcher_tags(predictions: pd.DataFrame) -> pd.DataFrame:
    """The tags a researcher would give: every image's planted trait (the demo records it)."""
    planted = predictions[predictions["demo_trait"].fillna("") != ""]
    return planted[["image_id", "demo_trait"]].rename(columns={"demo_trait": "tag"})


def test_discovery_finds_the_planted_failure_modes_on_the_demo(demo_workspace):
    run = demo_workspace / "runs" / "demo"
    predictions = pd.read_parquet(run / "predictions.parquet")
    predictions = predictions[predictions["split"] == "test"]
    attributes = read_attributes(run)
    automatic = discover(predictions, image_features(predictions, attributes), attributes)
    top = standouts(automatic, "anger", "sadness")
    assert top.iloc[0]["feature"] == "auto: monochrome" and top.iloc[0]["q_value"] < 0.05
    warm = standouts(automatic, "sadness", "anger")
    assert len(warm) and warm.iloc[0]["feature"] == "auto: red/warm tones"
    # Every planted cell, with the tags a researcher gives: its trait is the first trend
    # counted (tags and boolean attributes; a planted scene also differs in brightness and
    # colourfulness, real differences that may rank higher in a cell with stray images).
    tagged = discover(predictions, image_features(predictions, attributes, researcher_tags(predictions)))
    for mode in PLANTED:
        top = standouts(tagged, mode.emotion, mode.looks_like)
        assert len(top), f"no {mode.emotion} -> {mode.looks_like} finding in the test split"
        assert top.iloc[0]["feature"] in (AUTO + mode.trait, TAG + mode.trait), (mode, top)
        assert top.iloc[0]["q_value"] < 0.05, (mode, top)


def test_discovery_without_any_features_is_empty_not_an_error():
    predictions, _ = toy_predictions()
    found = discover(predictions, image_features(predictions))
    assert found.empty and standouts(found, "anger", "sadness").empty
