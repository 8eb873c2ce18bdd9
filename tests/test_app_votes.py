"""A run on an LDL-like dataset (Mikels' eight, a vote count for every class, as Flickr_LDL and
Twitter_LDL have): agreement is the share of votes for the label on the agreement page, and the
gallery cards and the inspector show every image's whole vote distribution."""
import base64
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotion_core.dataset import write_dataset
from emotion_core.labels import MIKELS8
from tests.conftest import open_page, save_noise_image
from tests.test_class_sets import PER_SPLIT, small_config
from training.schedule import Stage
from training.train import train

NAMES = list(MIKELS8.names)
# The label's votes and the other classes' votes (given to the classes after the label, in order).
# name -> (label votes, other votes, vote group, agreement bin)
PATTERNS = {
    "unanimous": (8, [], "unanimous", "100%"),
    "plurality": (5, [2, 1, 1], "non-unanimous", "50–60%"),   # 5 vs 4: strongly divided by FI's rule, not here
    "coin flip": (4, [3, 1, 1, 1], "strongly divided", "40–50%"),
    "majority": (6, [1, 1], "non-unanimous", "70–80%"),
}
BADGES = {"unanimous": "🟢 unanimous", "non-unanimous": "🟠 non-unanimous", "strongly divided": "🔴 strongly divided"}
GROUP_ROWS = {"unanimous": "unanimous (every vote for the label)",
              "non-unanimous": "non-unanimous (any vote for another class; includes strongly divided)",
              "strongly divided": "strongly divided (label ≤ 1 vote ahead of the runner-up)"}


def image_votes(label: str, pattern: str) -> dict[str, int]:
    mine, others, *_ = PATTERNS[pattern]
    k = NAMES.index(label)
    votes = {name: 0 for name in NAMES}
    votes[label] = mine
    for step, count in enumerate(others, start=1):
        votes[NAMES[(k + step) % len(NAMES)]] = count
    return votes


def pattern_of(image_id: str) -> str:
    return next(p for p in PATTERNS if image_id.endswith("_" + p.replace(" ", "-")))


@pytest.fixture(scope="module")
def ldl_run(tmp_path_factory) -> Path:
    """A workspace with one evaluated run on 8 classes whose manifest has votes_<class> for all of them,
    agree = the label's votes and disagree = the others (as the LDL importer writes them)."""
    root = tmp_path_factory.mktemp("ldl")
    rows, n = [], 0
    for k, label in enumerate(NAMES):
        for split, count in PER_SPLIT.items():
            for i in range(count):
                pattern = list(PATTERNS)[(k + i) % len(PATTERNS)]  # every pattern in every split
                image_id = f"{label}_{split}_{i}_{pattern.replace(' ', '-')}"
                save_noise_image(root / "dataset" / "images" / f"{image_id}.png", seed=n)
                votes = image_votes(label, pattern)
                rows.append({"image_id": image_id, "path": f"images/{image_id}.png", "label": label, "split": split,
                             "agree": votes[label], "disagree": sum(votes.values()) - votes[label],
                             **{f"votes_{e}": v for e, v in votes.items()}})
                n += 1
    write_dataset(root / "dataset", pd.DataFrame(rows), {}, MIKELS8)
    train(small_config(root / "dataset", root / "home" / "runs" / "ldl"), [Stage("all", ["all"], 1e-3, 1)])
    return root / "home"


@pytest.fixture
def ldl_env(ldl_run, tmp_path, monkeypatch) -> Path:
    shutil.copytree(ldl_run, tmp_path / "home")
    monkeypatch.setenv("EMOLENS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def evaluated_test_images(ldl_env) -> pd.DataFrame:
    predictions = pd.read_parquet(ldl_env / "runs" / "ldl" / "predictions.parquet")
    return predictions[predictions["split"] == "test"]


def test_the_evaluated_predictions_file_holds_the_distributions_agreement(ldl_env):
    """predictions.parquet is read by other tools too: its agreement is the share of votes for the label,
    its level the distribution's group, not FI's agree/disagree reading."""
    test = evaluated_test_images(ldl_env)
    for row in test.itertuples():
        votes = image_votes(row.label, pattern_of(row.image_id))
        assert row.agreement == pytest.approx(votes[row.label] / sum(votes.values())), row.image_id
        assert row.agreement_level == PATTERNS[pattern_of(row.image_id)][2], row.image_id


def test_the_agreement_page_reads_the_share_of_votes_for_the_label(ldl_env):
    test = evaluated_test_images(ldl_env)
    patterns = test["image_id"].map(pattern_of)
    assert set(patterns) == set(PATTERNS)  # every pattern among the test images
    at = open_page("pages/agreement.py")

    groups = at.dataframe[0].value.set_index("Votes")
    for group, row_name in GROUP_ROWS.items():
        members = patterns.isin([p for p, case in PATTERNS.items()
                                 if case[2] == group or (group == "non-unanimous" and case[2] != "unanimous")])
        assert groups.loc[row_name, "Images"] == f"{members.sum():,}", group
        assert groups.loc[row_name, "Accuracy"] == f"{test.loc[members, 'correct'].mean():.1%}", group
    unanimous = test[patterns == "unanimous"]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Accuracy, unanimous votes only"] == f"{unanimous['correct'].mean():.1%}"

    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    bins = patterns.map(lambda p: PATTERNS[p][3])
    expected = test.groupby(bins.to_numpy())["correct"].agg(["mean", "size"])
    order = ["40–50%", "50–60%", "70–80%", "100%"]
    assert list(chart["data"][0]["x"]) == order
    assert values(chart["data"][0]["y"]) == pytest.approx(expected.loc[order, "mean"].tolist())
    assert chart["data"][0]["text"] == [f"n={expected.loc[b, 'size']}" for b in order]
    assert "share of the votes for the label" in json.dumps(chart["layout"]["xaxis"])


def values(array) -> list:
    """A plotly JSON array: a list, or a typed array {"dtype": "f8", "bdata": base64}."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def expected_bar(votes: dict[str, int], label: str) -> str:
    """Independently: 'Amu▁1 Ang· **Awe▅6** ...', a block of ceil(8 × share) eighths."""
    total, parts = sum(votes.values()), []
    for name, count in votes.items():
        part = f"{name[:3].capitalize()}" + ("▁▂▃▄▅▆▇█"[math.ceil(8 * count / total) - 1] + str(count) if count else "·")
        parts.append(f"**{part}**" if name == label else part)
    return " ".join(parts)


def test_gallery_cards_and_the_inspector_show_the_whole_vote_distribution(ldl_env):
    assert expected_bar(image_votes("awe", "plurality"), "awe") == "Amu· Ang· **Awe▅5** Con▂2 Dis▁1 Exc▁1 Fea· Sad·"
    test = evaluated_test_images(ldl_env).set_index("image_id")
    at = open_page("pages/confusion.py")
    cards = [m.value for m in at.markdown if m.value.startswith("**")]
    assert cards
    for card in cards:
        image_id = card.split("**")[1]
        label = test.loc[image_id, "label"]
        votes = image_votes(label, pattern_of(image_id))
        assert f"votes {votes[label]} of {sum(votes.values())} for {label.capitalize()} · " in card, card
        assert f":small[{expected_bar(votes, label)}]" in card, card
        assert "agree" not in card  # the distribution, not FI's agree / disagree
        assert BADGES[PATTERNS[pattern_of(image_id)][2]] in card, card
    true, pred = at.session_state["selected_true"], at.session_state["selected_pred"]
    cell = test[(test["label"] == true) & (test["pred"] == pred)]
    at.selectbox(key="vote_filter").set_value("strongly divided").run()
    assert set(at.session_state["cell_image_ids"]) == {i for i in cell.index if pattern_of(i) == "coin flip"}

    at.switch_page("pages/inspector.py").run()
    assert not at.exception and not at.error
    image_id = at.session_state["inspect_id"]
    label = test.loc[image_id, "label"]
    votes = image_votes(label, pattern_of(image_id))
    assert any(expected_bar(votes, label) in m.value for m in at.markdown)
    bars = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")
            if '"votes"' in json.dumps(json.loads(chart.proto.spec)["layout"].get("xaxis", {}))]
    assert len(bars) == 1
    assert values(bars[0]["data"][0]["x"]) == list(votes.values())
    assert list(bars[0]["data"][0]["y"]) == [MIKELS8.display_name(n) for n in NAMES]


def test_a_one_hot_share_reads_as_a_share_in_the_gallery_and_the_inspector(demo_env, tmp_path, monkeypatch):
    """Emotion6-like shares on the demo run: the Anger → Sadness images have all their probability on
    Anger (one-hot, no fractional value), every other image a fractional distribution. The run's table
    holds shares, so the one-hot cards and the inspector show shares too, never '1 of 1' votes."""
    from tests.test_app import goto_cell, run_with_changed_votes

    def with_shares(predictions: pd.DataFrame) -> pd.DataFrame:
        one_hot = (predictions["label"] == "anger") & (predictions["pred"] == "sadness")
        for name in NAMES:
            own = (predictions["label"] == name).to_numpy()
            spread = np.where(own, 0.65, 0.05)  # 0.65 + 7 × 0.05 = 1
            predictions[f"votes_{name}"] = np.where(one_hot, np.where(own, 1.0, 0.0), spread)
        predictions["agree"] = pd.array([pd.NA] * len(predictions), dtype="Int64")
        predictions["disagree"] = predictions["agree"]
        return predictions

    run_with_changed_votes(demo_env, tmp_path, monkeypatch, with_shares)
    at = goto_cell(open_page("pages/confusion.py"), "anger", "sadness")
    cards = [m.value for m in at.markdown if m.value.startswith("**")]
    assert cards
    for card in cards:
        assert "votes 100% for Anger · 🟢 unanimous" in card and "of 1" not in card, card
        assert ":small[Amu· **Ang█100%** Awe·" in card, card
    at = goto_cell(at, "sadness", "sadness")
    card = next(m.value for m in at.markdown if m.value.startswith("**"))
    assert "votes 65% for Sadness" in card and "Amu▁5%" in card, card

    at = goto_cell(at, "anger", "sadness")
    at.switch_page("pages/inspector.py").run()
    assert not at.exception and not at.error
    assert any("votes 100% for Anger" in m.value for m in at.markdown)
    bars = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")
            if "share of votes" in json.dumps(json.loads(chart.proto.spec)["layout"].get("xaxis", {}))]
    assert len(bars) == 1 and list(bars[0]["data"][0]["text"])[1] == "100%"
