"""LDL metrics (emotion_core.ldl_metrics): the six measures against values worked by hand, metrics.json of
imported runs on an LDL-style and an FI-style dataset, and the Overview and Compare pages showing them.

The comparison pair (four 'awe' test images on Mikels' eight; wheel: Amusement, Contentment, Awe,
Excitement, Fear, Sadness, Disgust, Anger):
  awe_0  votes awe 5                   unanimous         A right (awe)      B right (awe)
  awe_1  votes awe 3, excitement 2     strongly divided  A fear (2 steps)   B excitement (1 step, 2 of 5 votes)
  awe_2  votes awe 3, amusement 2      strongly divided  A sadness (3 steps) B right
  awe_3  votes awe 4, contentment 1    non-unanimous     A right            B contentment (1 step, 1 of 5 votes)
Run A puts 0.65 on its answer and 0.05 on each other class, run B 0.3 and 0.1.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotion_core import compare
from emotion_core.dataset import write_dataset
from emotion_core.labels import MIKELS8
from emotion_core.ldl_metrics import (AGREEMENT_KEY, KL_EPSILON, LDL_KEY, MEASURES, label_probability_vs_agreement,
                                      ldl_metrics, per_image, predicted_distributions, summary_line,
                                      voted_distributions)
from emotion_core.votes import with_votes
from tests.conftest import open_page
from training import import_predictions
from training.evaluate import print_summary

NAMES = list(MIKELS8.names)
VOTES = {"awe_0": {"awe": 5}, "awe_1": {"awe": 3, "excitement": 2}, "awe_2": {"awe": 3, "amusement": 2},
         "awe_3": {"awe": 4, "contentment": 1}}
PRED_A = {"awe_0": "awe", "awe_1": "fear", "awe_2": "sadness", "awe_3": "awe"}
PRED_B = {"awe_0": "awe", "awe_1": "excitement", "awe_2": "awe", "awe_3": "contentment"}
SURE = {"a": (0.65, 0.05), "b": (0.3, 0.1)}  # (on the predicted class, on each other class)


def test_the_six_measures_against_hand_values():
    predicted = np.array([[0.5, 0.3, 0.2], [0.6, 0.4, 0.0], [1.0, 0.0, 0.0]])
    voted = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    got = per_image(predicted, voted)
    assert list(got.columns) == list(MEASURES)
    # row 0: |p - q| = (.3, 0, .3), p + q = (.7, .6, .7); p.q = .29, |p|^2 = |q|^2 = .38
    # row 1: |p - q| = (.4, .4, 0), p + q = (1.6, .4, 0): the third class is 0/0, counted 0
    # row 2: q = (.5, .5, 0), p = (1, 0, 0): KL clips p's 0 to 1e-12, q's 0 adds nothing
    expected = {
        "chebyshev": [0.3, 0.4, 0.5],
        "clark": [math.sqrt(2 * (0.3 / 0.7) ** 2), math.sqrt(0.25 ** 2 + 1.0), math.sqrt((1 / 3) ** 2 + 1.0)],
        "canberra": [2 * 0.3 / 0.7, 0.25 + 1.0, 1 / 3 + 1.0],
        "kl": [0.5 * math.log(2.5) - 0.2 * math.log(2.5), math.log(1 / 0.6),
               0.5 * math.log(0.5) + 0.5 * math.log(0.5 / KL_EPSILON)],
        "cosine": [0.29 / 0.38, 0.6 / math.sqrt(0.52), 0.5 / math.sqrt(0.5)],
        "intersection": [0.7, 0.6, 0.5],
    }
    for measure, values in expected.items():
        assert got[measure].tolist() == pytest.approx(values, rel=1e-9), measure
    assert got.loc[0, "kl"] == pytest.approx(0.274887, abs=1e-6)  # 0.3 ln 2.5, worked on paper
    assert got.loc[2, "kl"] == pytest.approx(13.122363, abs=1e-6)  # ln 0.5 + 0.5 ln 1e12


def test_identical_distributions_are_at_distance_zero():
    q = np.array([[0.2, 0.3, 0.5]])
    got = per_image(q, q).iloc[0]
    assert got[["chebyshev", "clark", "canberra", "kl"]].tolist() == pytest.approx([0, 0, 0, 0], abs=1e-12)
    assert got[["cosine", "intersection"]].tolist() == pytest.approx([1, 1])


def test_votes_become_distributions_counts_or_shares_and_none_without_them():
    table = pd.DataFrame({"votes_a": [3, 0.2, 0, None], "votes_b": [1, 0.8, 0, 2], "p_a": 0.5, "p_b": 0.5})
    voted = voted_distributions(table, ["a", "b"])
    assert voted[:2].tolist() == [[0.75, 0.25], [0.2, 0.8]]
    assert np.isnan(voted[2:]).all()  # all zero, a vote missing: no distribution
    nullable = table.astype({"votes_a": "Float64"}).astype({"votes_a": "Int64"}, errors="ignore")
    assert np.isnan(voted_distributions(nullable.iloc[3:], ["a", "b"])).all()  # pd.NA read as missing
    assert voted_distributions(table.drop(columns="votes_b"), ["a", "b"]) is None  # not every class
    assert voted_distributions(pd.DataFrame({"agree": [3], "disagree": [2]}), ["a", "b"]) is None  # FI-style
    assert predicted_distributions(table, ["b", "a"]).tolist() == [[0.5, 0.5]] * 4
    with pytest.raises(ValueError, match="no probability column p_c"):
        predicted_distributions(table, ["a", "c"])
    result = ldl_metrics(table, ["a", "b"])
    assert (result["images"], result["without_distribution"]) == (2, 2)
    assert result["chebyshev"] == pytest.approx((0.25 + 0.3) / 2)


def fi_table() -> pd.DataFrame:
    """Four FI-style images: agree share 1, .8, .6, .4 and p(label) .9, .7, .5, .3 (rho = 1)."""
    rows = []
    for k, (agree, p_label, pred) in enumerate([(5, 0.9, "awe"), (4, 0.7, "awe"), (3, 0.5, "fear"), (2, 0.3, "fear")]):
        probabilities = {f"p_{n}": (1 - p_label) / 7 for n in NAMES} | {"p_awe": p_label}
        rows.append({"image_id": f"i{k}", "label": "awe", "agree": agree, "disagree": 5 - agree, "pred": pred,
                     "confidence": max(probabilities.values()), **probabilities})
    table = pd.DataFrame(rows)
    return with_votes(table.assign(label_idx=NAMES.index("awe"), pred_idx=table["pred"].map(NAMES.index)))


def test_fi_style_votes_give_the_label_probability_against_the_agree_share():
    result = label_probability_vs_agreement(fi_table(), MIKELS8)
    assert result["spearman"] == pytest.approx(1.0) and result["images"] == 4
    levels = {row["level"]: row for row in result["levels"]}
    # 5/0 unanimous; 4/1 non-unanimous; 3/2 and 2/3 strongly divided (agree - disagree <= 1)
    assert {level: row["mean_label_probability"] for level, row in levels.items()} == pytest.approx(
        {"unanimous": 0.9, "non-unanimous": 0.7, "strongly divided": 0.4})
    assert levels["strongly divided"]["accuracy"] == 0.0 and levels["unanimous"]["accuracy"] == 1.0
    assert ldl_metrics(fi_table(), MIKELS8) is None


# ---- the comparison pair and imported runs -------------------------------------------------------------


def manifest() -> pd.DataFrame:
    rows = []
    for image_id, votes in VOTES.items():
        counts = {f"votes_{n}": votes.get(n, 0) for n in NAMES}
        rows.append({"image_id": image_id, "path": f"images/{image_id}.png", "label": "awe", "split": "test",
                     "agree": votes["awe"], "disagree": sum(votes.values()) - votes["awe"], **counts})
    rows.append({**rows[0], "image_id": "train_0", "path": "images/train_0.png", "split": "train"})
    return pd.DataFrame(rows).astype({f"votes_{n}": "Int64" for n in NAMES})


def probabilities(run: str) -> pd.DataFrame:
    """Run a's or b's predictions file: image_id and p_<class>."""
    chosen, sure = {"a": PRED_A, "b": PRED_B}[run], SURE[run]
    rows = [{"image_id": image_id, **{f"p_{n}": sure[0] if n == pred else sure[1] for n in NAMES}}
            for image_id, pred in {**chosen, "train_0": "awe"}.items()]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def ldl_home(tmp_path_factory) -> Path:
    """A workspace with an LDL-style dataset (votes_<class> counts) and two imported runs, a and b."""
    home = tmp_path_factory.mktemp("ldl_home")
    dataset = write_dataset(home / "datasets" / "ldl", manifest(), {}, MIKELS8)
    for run in ("a", "b"):
        path = home / f"{run}.csv"
        probabilities(run).to_csv(path, index=False)
        import_predictions.main(import_predictions.get_args_parser().parse_args(
            ["--dataset", str(dataset), "--predictions", str(path), "--out", str(home / "runs" / run)]))
    return home


def test_an_ldl_dataset_run_has_the_ldl_metrics_in_metrics_json(ldl_home, capsys):
    metrics = json.loads((ldl_home / "runs" / "a" / "metrics.json").read_text())
    ldl = metrics["splits"]["test"][LDL_KEY]
    assert (ldl["images"], ldl["without_distribution"]) == (4, 0)
    # awe_0: q = (awe 1), p_awe = .65: KL = ln(1/.65); awe_1, awe_2: p .05 on both voted classes;
    # awe_3: q = (.8, .2) with p_awe = .65, p_contentment = .05
    kl = [math.log(1 / 0.65), 0.6 * math.log(12) + 0.4 * math.log(8), 0.6 * math.log(12) + 0.4 * math.log(8),
          0.8 * math.log(0.8 / 0.65) + 0.2 * math.log(0.2 / 0.05)]
    assert ldl["kl"] == pytest.approx(np.mean(kl), rel=1e-5)
    assert ldl["intersection"] == pytest.approx(np.mean([0.65, 0.1, 0.1, 0.65 + 0.05]), rel=1e-5)
    assert AGREEMENT_KEY not in metrics["splits"]["test"]  # the distribution answers, not the agree share
    print_summary(metrics)
    assert summary_line(ldl) in capsys.readouterr().out and "KL divergence ↓" in summary_line(ldl)


def test_an_fi_style_run_has_the_label_probability_spearman(tmp_path):
    fi = manifest().drop(columns=[f"votes_{n}" for n in NAMES])
    dataset = write_dataset(tmp_path / "fi", fi, {}, MIKELS8)
    probabilities("a").to_csv(tmp_path / "a.csv", index=False)
    import_predictions.main(import_predictions.get_args_parser().parse_args(
        ["--dataset", str(dataset), "--predictions", str(tmp_path / "a.csv"), "--out", str(tmp_path / "run")]))
    test = json.loads((tmp_path / "run" / "metrics.json").read_text())["splits"]["test"]
    assert LDL_KEY not in test
    # agree share 1, .6, .6, .8 against p(awe) .65, .05, .05, .65
    assert test[AGREEMENT_KEY]["images"] == 4 and test[AGREEMENT_KEY]["spearman"] > 0.8


@pytest.fixture
def pair(ldl_home) -> compare.Comparison:
    a, b = (pd.read_parquet(ldl_home / "runs" / run / "predictions.parquet") for run in ("a", "b"))
    return compare.align(a, b, classes=MIKELS8, split="test")


def test_the_comparison_says_whose_errors_are_nearer(pair):
    nearness = compare.error_nearness(pair).set_index("level")
    divided = nearness.loc["strongly divided"]
    assert (divided["images"], divided["errors_a"], divided["errors_b"]) == (2, 2, 1)
    assert (divided["wheel_a"], divided["wheel_b"]) == pytest.approx((2.5, 1.0))  # fear 2 + sadness 3; excitement 1
    assert (divided["voted_pred_a"], divided["voted_pred_b"]) == pytest.approx((0.0, 0.4))
    # KL over both divided images: A .6 ln 12 + .4 ln 8 twice; B (.6 ln 6 + .4 ln 4/3 + .6 ln 2 + .4 ln 4) / 2
    assert divided["kl_a"] == pytest.approx(0.6 * math.log(12) + 0.4 * math.log(8), rel=1e-5)
    assert divided["kl_b"] == pytest.approx((0.6 * math.log(6) + 0.4 * math.log(4 / 3)
                                             + 0.6 * math.log(2) + 0.4 * math.log(4)) / 2, rel=1e-5)
    other = nearness.loc["non-unanimous, not strongly divided"]
    assert other["errors_a"] == 0 and np.isnan(other["wheel_a"]) and other["voted_pred_b"] == pytest.approx(0.2)
    sentence = compare.nearness_sentence(compare.error_nearness(pair))
    assert sentence.startswith("On the 2 strongly divided images run A makes 2 errors, run B 1")
    assert "2.5 and 1.0 wheel steps" in sentence


def test_the_metric_table_has_the_ldl_rows_with_their_direction(pair):
    table = compare.metric_table(pair).set_index("metric")
    kl, intersection = table.loc["LDL KL divergence"], table.loc["LDL Intersection"]
    assert kl["value_b"] < kl["value_a"] and kl["winner"] == "B"  # lower is better
    # intersection by hand: A (.65 + .1 + .1 + .7) / 4, B (.3 + .4 + .4 + .3) / 4: higher is better, so A
    assert (intersection["value_a"], intersection["value_b"]) == pytest.approx((0.3875, 0.35), rel=1e-6)
    assert intersection["winner"] == "A"


def test_a_pair_without_distributions_has_no_ldl_rows_and_no_vote_columns(pair):
    table = pair.table.drop(columns=[f"votes_{n}" for n in NAMES])
    plain = compare.Comparison(table, pair.classes, "test", 0, 0)
    assert not compare.metric_table(plain)["metric"].str.startswith("LDL").any()
    nearness = compare.error_nearness(plain)
    assert "wheel_a" in nearness and "kl_a" not in nearness and "voted_pred_a" not in nearness


def test_overview_shows_the_ldl_block_and_compare_the_rows(ldl_home, monkeypatch):
    monkeypatch.setenv("EMOLENS_HOME", str(ldl_home))
    at = open_page("pages/overview.py")
    assert "LDL metrics" in [s.value for s in at.subheader]
    labels = [m.label for m in at.metric]
    assert "KL divergence ↓" in labels and "Cosine similarity ↑" in labels
    at = open_page("pages/compare.py")
    metrics = at.dataframe[0].value.set_index("Metric")
    assert {"LDL KL divergence", "LDL Intersection"} <= set(metrics.index)
    assert "Are the errors nearer?" in "\n".join(m.value for m in at.markdown)


def _without_ldl_entries(run_dir: Path) -> None:
    """metrics.json as an EmoLens evaluating before the LDL metrics wrote it: polarity, calibration, no LDL keys."""
    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text())
    for split in metrics["splits"].values():
        split.pop(LDL_KEY, None)
        split.pop(AGREEMENT_KEY, None)
        assert "polarity" in split and "calibration" in split  # the older emotion-aware metrics stay
    path.write_text(json.dumps(metrics))


def test_an_old_metrics_json_without_the_ldl_keys_gets_them_from_the_predictions(ldl_home, tmp_path, monkeypatch):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(ldl_home, home)
    expected = json.loads((home / "runs" / "a" / "metrics.json").read_text())["splits"]["test"][LDL_KEY]
    _without_ldl_entries(home / "runs" / "a")
    shutil.rmtree(home / "runs" / "b")
    monkeypatch.setenv("EMOLENS_HOME", str(home))
    at = open_page("pages/overview.py")
    assert "LDL metrics" in [s.value for s in at.subheader]
    shown = {m.label: m.value for m in at.metric}
    assert shown["KL divergence ↓"] == f"{expected['kl']:.3f}"
    from emotion_core.html_report import build_report

    text = build_report(home / "runs" / "a", split="test").to_markdown()
    assert f"| LDL KL divergence ↓ | {expected['kl']:.3f} |" in text


def test_split_emotion_metrics_fills_in_only_the_missing_ldl_entries(ldl_home):
    from emotion_core.emotion_metrics import lacks_ldl_entries, split_emotion_metrics

    stored = json.loads((ldl_home / "runs" / "a" / "metrics.json").read_text())["splits"]["test"]
    old = {key: value for key, value in stored.items() if key != LDL_KEY} | {"polarity": {"marker": 1}}
    predictions = pd.read_parquet(ldl_home / "runs" / "a" / "predictions.parquet").query("split == 'test'")
    assert lacks_ldl_entries(old) and not lacks_ldl_entries(stored) and not lacks_ldl_entries(old, False)
    filled = split_emotion_metrics(old, predictions, MIKELS8)
    assert filled["polarity"] == {"marker": 1}  # what metrics.json holds is kept, not recomputed
    assert filled[LDL_KEY] == pytest.approx(stored[LDL_KEY])
    assert LDL_KEY not in split_emotion_metrics(old, predictions, MIKELS8, has_probabilities=False)
    assert LDL_KEY not in split_emotion_metrics(old, None, MIKELS8)


def test_an_old_fi_run_without_votes_shows_no_ldl_block_and_no_error(tmp_path, monkeypatch):
    no_votes = manifest().drop(columns=[f"votes_{n}" for n in NAMES] + ["agree", "disagree"])
    dataset = write_dataset(tmp_path / "datasets" / "fi", no_votes, {}, MIKELS8)
    probabilities("a").to_csv(tmp_path / "a.csv", index=False)
    import_predictions.main(import_predictions.get_args_parser().parse_args(
        ["--dataset", str(dataset), "--predictions", str(tmp_path / "a.csv"), "--out", str(tmp_path / "runs" / "a")]))
    _without_ldl_entries(tmp_path / "runs" / "a")
    monkeypatch.setenv("EMOLENS_HOME", str(tmp_path))
    at = open_page("pages/overview.py")
    headings = [s.value for s in at.subheader]
    assert "Emotion-aware evaluation" in headings
    assert "LDL metrics" not in headings and "Predicted p(label) and the agree share" not in headings


def labels_only_run(home: Path) -> Path:
    """Run c of the LDL workspace imported from predicted labels alone: one-hot p_ columns, has_probabilities false."""
    path = home / "c.csv"
    pd.DataFrame({"image_id": list(PRED_B) + ["train_0"], "pred": list(PRED_B.values()) + ["awe"]}).to_csv(path,
                                                                                                          index=False)
    import_predictions.main(import_predictions.get_args_parser().parse_args(
        ["--dataset", str(home / "datasets" / "ldl"), "--predictions", str(path), "--out", str(home / "runs" / "c")]))
    return home / "runs" / "c"


def test_a_labels_only_import_gets_no_ldl_metrics_nor_kl(ldl_home, tmp_path, monkeypatch):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(ldl_home, home)
    run = labels_only_run(home)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["has_probabilities"] is False
    assert LDL_KEY not in metrics["splits"]["test"] and AGREEMENT_KEY not in metrics["splits"]["test"]
    a, c = (pd.read_parquet(home / "runs" / r / "predictions.parquet") for r in ("a", "c"))
    pair = compare.align(a, c, classes=MIKELS8, split="test", with_probabilities=(True, False))
    assert not compare.metric_table(pair)["metric"].str.startswith("LDL").any()
    nearness = compare.error_nearness(pair)
    assert "kl_a" not in nearness and "kl_b" not in nearness and "voted_pred_b" in nearness
    assert "kl_a" in compare.error_nearness(compare.align(a, c, classes=MIKELS8, split="test"))  # the stand-ins
    _without_ldl_entries(run)  # nor computed later for an old labels-only run
    shutil.rmtree(home / "runs" / "a")
    shutil.rmtree(home / "runs" / "b")
    monkeypatch.setenv("EMOLENS_HOME", str(home))
    at = open_page("pages/overview.py")
    assert "LDL metrics" not in [s.value for s in at.subheader]
    assert any("imported with labels only" in c.value for c in at.caption)
    from emotion_core.html_report import build_report

    text = build_report(run, split="test").to_markdown()
    assert "LDL KL divergence" not in text and "imported with labels only" in text


def test_ldl_metrics_without_probability_columns_is_none_not_an_error():
    from emotion_core.metrics import evaluation_metrics

    table = manifest().query("split == 'test'").assign(label_idx=NAMES.index("awe"), pred_idx=NAMES.index("awe"),
                                                       pred="awe")
    assert ldl_metrics(table, MIKELS8) is None  # votes but no p_ columns
    assert ldl_metrics(pd.concat([table, probabilities("a").iloc[:4].drop(columns=["image_id", "p_fear"])], axis=1),
                       MIKELS8) is None  # all but one
    assert LDL_KEY not in evaluation_metrics(table, MIKELS8)


def test_the_comparison_report_has_the_ldl_rows_and_the_nearness_table(ldl_home):
    from emotion_core.html_report import build_report

    text = build_report(ldl_home / "runs" / "a", split="test", compare=ldl_home / "runs" / "b").to_markdown()
    assert "| LDL KL divergence ↓ |" in text  # run A's own metrics
    assert "| LDL KL divergence |" in text and "On the 2 strongly divided images run A makes 2 errors" in text
    assert "| Wheel steps of errors A |" in text
