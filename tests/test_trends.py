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


def test_the_trends_page_makes_its_features_once_and_its_files_on_click(demo_env, tmp_path, monkeypatch):
    """Reruns of the Trends page (a widget change) reuse the features (0.2 s at 118k EmoSet predictions)
    and build no export file (seconds): each download button holds a callable run on click, which makes
    the same file as emotion_core.trends does."""
    from collections import Counter

    from streamlit.delta_generator import DeltaGenerator

    import emotion_core.trends as trends
    from emotion_core.attributes import read_attributes
    from emotion_core.runs import load_predictions
    from tests.test_app import goto_cell, run_with_changed_votes, start

    run_with_changed_votes(demo_env, tmp_path, monkeypatch, lambda p: p)  # a fresh run: no cached features
    calls = Counter()
    for name in ("image_features", "markdown_report", "cells_csv"):
        def counted(*args, _real=getattr(trends, name), _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)
        monkeypatch.setattr(trends, name, counted)
    downloads, real_button = {}, DeltaGenerator.download_button

    def recording(self, label, data, *args, **kwargs):
        downloads[label] = data
        return real_button(self, label, data, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording)
    at = goto_cell(start("pages/trends.py"), "anger", "sadness")
    at.number_input(key="min_images").set_value(4).run()
    assert not at.exception and not at.error
    assert calls == Counter(image_features=1)  # four runs of the page, one feature table, no file
    files = {"This cell: Markdown", "This cell: CSV", "All cells: Markdown", "All cells: CSV",
             "Discovery, all cells: CSV"}
    assert files <= set(downloads) and all(callable(downloads[label]) for label in files)

    run = tmp_path / "workspace" / "runs" / "demo"
    predictions = load_predictions(run)
    predictions = predictions[predictions["split"] == at.session_state["split"]]
    features = trends.image_features(predictions, read_attributes(run))
    assert downloads["This cell: CSV"]() == \
        trends.cells_csv(predictions, features, [("anger", "sadness")]).to_csv(index=False)
    everything = downloads["All cells: Markdown"]()
    assert everything.startswith("# Error analysis") and "**Anger misclassified as Sadness:**" in everything
    assert everything.count("misclassified as") == len(trends.error_cells(predictions))
