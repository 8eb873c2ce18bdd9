"""AppTest of issue 14's dashboard parts on the demo run: the inspector's predicted distribution beside
the votes (FI's agree share; a vote distribution), the gallery's distance sort, and the multi-label
view's covered errors on the confusion page. Expected values are computed here from the run's files
with numpy, not with emotion_core.multilabel."""
import json

import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from emotion_core.labels import EMOTIONS
from tests.conftest import APP
from tests.test_app import goto_cell, run_with_changed_votes, start
from tests.test_app_votes import values

P_COLUMNS = [f"p_{e}" for e in EMOTIONS]
KL_SORT = "distance predicted ↔ voted distribution (KL, largest first)"


def test_split(home) -> pd.DataFrame:
    predictions = pd.read_parquet(home / "runs" / "demo" / "predictions.parquet")
    return predictions[predictions["split"] == "test"].set_index("image_id")


test_split.__test__ = False  # a helper, not a test


def comparison_chart(at: AppTest) -> dict:
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    found = [c for c in charts if len(c["data"]) == 2 and c["data"][0].get("name") == "predicted"]
    assert len(found) == 1, [c["data"][0].get("name") for c in charts]
    return found[0]


def unescaped(markdown: str) -> str:
    return markdown.replace("\\", "")


def covered_by_hand(rows: pd.DataFrame, tau: float) -> int:
    """Errors whose label's probability reaches τ (the predicted class is never the label of an error)."""
    wrong = rows[rows["label"] != rows["pred"]]
    label_p = wrong[P_COLUMNS].to_numpy()[np.arange(len(wrong)), wrong["label"].map(EMOTIONS.index).to_numpy()]
    return int((label_p >= tau).sum())


def test_the_covered_line_follows_the_threshold_and_the_url_keeps_it(demo_env):
    test = test_split(demo_env)
    at = goto_cell(start("pages/confusion.py"), "anger", "sadness")
    assert not any("covered errors" in c.value for c in at.caption)  # the view starts off
    at.toggle(key="multilabel_view").set_value(True).run()
    cell = test[(test["label"] == "anger") & (test["pred"] == "sadness")]
    for tau in (0.2, 0.95, 0.05):
        at.slider(key="multilabel_threshold").set_value(tau).run()
        assert not at.exception and not at.error
        line = next(c.value for c in at.caption if "covered errors" in c.value)
        assert f"τ = {tau:.2f}" in line, line
        assert f"covered errors: {covered_by_hand(cell, tau)} of {len(cell)} Anger → Sadness errors" in line, line
        accuracy = (test["label"] == test["pred"]).mean()
        assert f"(top-1 accuracy {accuracy:.0%}, unchanged)" in line, line
        assert f"{covered_by_hand(test, tau)} of {int((test['label'] != test['pred']).sum())} errors covered" in line
        assert at.query_params["tau"] in (f"{tau:.2f}", [f"{tau:.2f}"])
    cards = [unescaped(m.value) for m in at.markdown if m.value.startswith("**")]
    assert cards and all("set: " in card and "(p ≥ 0.05)" in card for card in cards), cards[:1]
    at.switch_page("pages/inspector.py").run()  # the view is kept across pages
    assert any(c.value.startswith("Set at τ = 0.05 (p ≥ τ, always the top class): ") for c in at.caption)
    at.switch_page("pages/confusion.py").run()
    assert at.toggle(key="multilabel_view").value and at.slider(key="multilabel_threshold").value == 0.05

    at.toggle(key="multilabel_view").set_value(False).run()
    assert "tau" not in at.query_params
    assert not any("covered errors" in c.value for c in at.caption)
    assert not any("set: " in unescaped(m.value) for m in at.markdown if m.value.startswith("**"))


def test_a_link_with_tau_opens_the_multilabel_view(demo_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"run": "demo", "true": "anger", "pred": "sadness", "tau": "0.35"})
    at.run()
    at.switch_page("pages/confusion.py").run()
    assert not at.exception
    assert at.slider(key="multilabel_threshold").value == 0.35
    assert any("τ = 0.35" in c.value and "covered errors" in c.value for c in at.caption)


def test_a_link_with_an_infinite_tau_opens_the_page_with_the_view_off(demo_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"run": "demo", "true": "anger", "pred": "sadness", "tau": "1e400"})
    at.run()
    at.switch_page("pages/confusion.py").run()
    assert not at.exception, at.exception
    assert not at.toggle(key="multilabel_view").value


def test_the_inspector_shows_the_predicted_distribution_beside_the_agree_share(demo_env):
    test = test_split(demo_env)
    at = goto_cell(start("pages/confusion.py"), "anger", "sadness")
    at.switch_page("pages/inspector.py").run()
    assert not at.exception and not at.error
    row = test.loc[at.session_state["inspect_id"]]
    chart = comparison_chart(at)
    predicted, voted = chart["data"]
    assert list(predicted["y"]) == [e.capitalize() for e in EMOTIONS]
    assert np.allclose(values(predicted["x"]), row[P_COLUMNS].to_numpy(float) / row[P_COLUMNS].sum())
    share = row["agree"] / (row["agree"] + row["disagree"])
    assert voted["name"] == "agree share (label only)"
    voted_x = values(voted["x"])
    assert [v for v in voted_x if v is not None] == [share] and voted_x[EMOTIONS.index("anger")] == share
    assert any(f"vs agree share {share:.0%}" in c.value and "|p(label) − agree share|" in c.value for c in at.caption)


def with_vote_counts(predictions: pd.DataFrame) -> pd.DataFrame:
    """LDL-like counts: 5 votes for the label and 1 to 3 for the class after it (by the row's position),
    so that every image has a distribution and the KL differs from image to image."""
    position = np.arange(len(predictions))
    labels = predictions["label"].map(EMOTIONS.index).to_numpy()
    for k, name in enumerate(EMOTIONS):
        predictions[f"votes_{name}"] = np.where(labels == k, 5, np.where((labels + 1) % 8 == k, 1 + position % 3, 0))
    return predictions


def kl_by_hand(rows: pd.DataFrame) -> pd.Series:
    q = rows[[f"votes_{e}" for e in EMOTIONS]].to_numpy(float)
    q = q / q.sum(axis=1, keepdims=True)
    p = rows[P_COLUMNS].to_numpy(float)
    p = np.clip(p / p.sum(axis=1, keepdims=True), 1e-12, None)
    terms = np.where(q > 0, q * np.log(np.where(q > 0, q, 1) / p), 0.0)
    return pd.Series(terms.sum(axis=1), index=rows.index)


def test_vote_distributions_in_the_inspector_and_the_gallerys_distance_sort(demo_env, tmp_path, monkeypatch):
    run_with_changed_votes(demo_env, tmp_path, monkeypatch, with_vote_counts)
    test = test_split(tmp_path / "workspace")
    cell = test[(test["label"] == "anger") & (test["pred"] == "sadness")]
    at = goto_cell(start("pages/confusion.py"), "anger", "sadness")
    assert KL_SORT in at.selectbox(key="sort").options
    at.selectbox(key="sort").set_value(KL_SORT).run()
    assert not at.exception and not at.error
    kl = kl_by_hand(cell)
    expected = sorted(cell.index, key=lambda i: (-kl[i], i))
    assert at.session_state["cell_image_ids"] == expected

    at.switch_page("pages/inspector.py").run()  # the first image of the gallery's order: the largest KL
    assert not at.exception and not at.error
    image_id = at.session_state["inspect_id"]
    assert image_id == expected[0]
    row = test.loc[image_id]
    predicted, voted = comparison_chart(at)["data"]
    votes = row[[f"votes_{e}" for e in EMOTIONS]].to_numpy(float)
    assert voted["name"] == "voted share" and np.allclose(values(voted["x"]), votes / votes.sum())
    assert np.allclose(values(predicted["x"]), row[P_COLUMNS].to_numpy(float) / row[P_COLUMNS].sum())
    line = next(c.value for c in at.caption if c.value.startswith("Predicted vs voted:"))
    assert f"KL divergence ↓ {kl[image_id]:.3f}" in line and "Intersection ↑" in line, line


def test_the_distance_sort_on_fi_votes_is_the_agree_gap(demo_env):
    test = test_split(demo_env)
    cell = test[(test["label"] == "anger") & (test["pred"] == "sadness")]
    at = goto_cell(start("pages/confusion.py"), "anger", "sadness")
    options = at.selectbox(key="sort").options
    assert KL_SORT not in options and "|p(label) − agree share| (largest first)" in options
    at.selectbox(key="sort").set_value("|p(label) − agree share| (largest first)").run()
    gap = (cell["p_anger"] / cell[P_COLUMNS].sum(axis=1) - cell["agree"] / (cell["agree"] + cell["disagree"])).abs()
    assert at.session_state["cell_image_ids"] == sorted(cell.index, key=lambda i: (-gap[i], i))
