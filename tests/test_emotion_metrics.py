"""Emotion-aware evaluation (issue 12, point 2): polarity, ECC/EMC, calibration, confidence vs votes."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from streamlit.testing.v1 import AppTest

from emotion_core import emotion_metrics as em
from emotion_core.labels import EMOTIONS, FI_CLASSES, ClassSet
from emotion_core.metrics import evaluation_metrics

A = {name: i for i, name in enumerate(EMOTIONS)}  # FI's model order

# A hand-made confusion matrix in FI's order: 10 right per class, 20 errors. Mikels' wheel positions:
# amusement 0, contentment 1, awe 2, excitement 3, fear 4, sadness 5, disgust 6, anger 7.
# (true, pred, images, W by hand: 1 + d same polarity, 4 + d across)
ERRORS = [
    ("amusement", "contentment", 4, 2),   # d 1, both positive
    ("amusement", "anger", 2, 5),         # d 1 (round the wheel: 0 -> 7), across
    ("excitement", "fear", 3, 5),         # d 1, across
    ("awe", "sadness", 1, 7),             # d 3, across
    ("fear", "disgust", 2, 3),            # d 2, both negative
    ("contentment", "excitement", 2, 3),  # d 2, both positive
    ("sadness", "amusement", 1, 7),       # d 3 (5 -> 0 the short way: 3 steps), across
    ("anger", "fear", 5, 4),              # d 3, both negative
]
# ECC = (80 + 4/2 + 2/5 + 3/5 + 1/7 + 2/3 + 2/3 + 1/7 + 5/4) / 100
HAND_ECC = (80 + 2 + 0.4 + 0.6 + 1 / 7 + 2 / 3 + 2 / 3 + 1 / 7 + 1.25) / 100
# EMC = (4/1 + 2/4 + 3/4 + 1/6 + 2/2 + 2/2 + 1/6 + 5/3) / 20 = 9.25 / 20
HAND_EMC = 0.4625
CROSSING = 2 + 3 + 1 + 1   # amusement->anger, excitement->fear, awe->sadness, sadness->amusement


def hand_matrix() -> np.ndarray:
    counts = np.diag(np.full(8, 10))
    for true, pred, images, _ in ERRORS:
        counts[A[true], A[pred]] += images
    return counts


def predictions_from(counts: np.ndarray, seed: int = 0) -> pd.DataFrame:
    true, pred = np.nonzero(counts)
    repeats = counts[true, pred]
    rng = np.random.default_rng(seed)
    n = int(repeats.sum())
    frame = pd.DataFrame({"label_idx": np.repeat(true, repeats), "pred_idx": np.repeat(pred, repeats)})
    frame["label"] = [EMOTIONS[i] for i in frame["label_idx"]]
    frame["confidence"] = rng.uniform(0.13, 1.0, n)
    frame["agree"] = rng.integers(3, 6, n)
    frame["disagree"] = 5 - frame["agree"]
    return frame


def test_ecc_and_emc_match_the_hand_computed_matrix():
    metrics = evaluation_metrics(predictions_from(hand_matrix()), FI_CLASSES)
    assert metrics["ecc"] == pytest.approx(HAND_ECC, abs=1e-12)
    assert metrics["emc"] == pytest.approx(HAND_EMC, abs=1e-12)


def test_emotional_distances_are_the_papers():
    distances = em.emotion_distances(FI_CLASSES)
    for true, pred, _, by_hand in ERRORS:
        assert distances[A[true], A[pred]] == by_hand
    assert (np.diag(distances) == 1).all() and (distances == distances.T).all()
    assert distances.max() == 4 + 4  # opposite side of the wheel, other polarity
    assert distances[A["excitement"], A["awe"]] == 2 and distances[A["excitement"], A["anger"]] == 8


def test_the_metrics_do_not_depend_on_the_model_class_order():
    order = list(reversed(EMOTIONS))
    shuffled = ClassSet(tuple(order))  # Mikels' eight, no polarity or wheel declared: Mikels' are used
    to_new = np.array([order.index(name) for name in EMOTIONS])
    frame = predictions_from(hand_matrix())
    frame["label_idx"], frame["pred_idx"] = to_new[frame["label_idx"]], to_new[frame["pred_idx"]]
    metrics = evaluation_metrics(frame, shuffled)
    assert metrics["ecc"] == pytest.approx(HAND_ECC) and metrics["emc"] == pytest.approx(HAND_EMC)
    assert metrics["polarity"]["accuracy"] == pytest.approx(0.93)


def test_polarity_accuracy_and_crossing_errors():
    polarity = evaluation_metrics(predictions_from(hand_matrix()), FI_CLASSES)["polarity"]
    assert polarity == {"accuracy": pytest.approx((100 - CROSSING) / 100), "errors": 20,
                        "cross_polarity_errors": CROSSING, "cross_polarity_error_share": pytest.approx(7 / 20)}


def test_no_errors_leave_emc_and_the_crossing_share_empty():
    metrics = evaluation_metrics(predictions_from(np.diag(np.full(8, 3))), FI_CLASSES)
    assert metrics["ecc"] == 1.0 and metrics["emc"] is None
    assert metrics["polarity"]["cross_polarity_error_share"] is None


def test_expected_calibration_error_against_a_direct_computation():
    rng = np.random.default_rng(3)
    confidence = rng.uniform(0, 1, 2000) ** 0.5
    correct = rng.random(2000) < confidence * 0.8
    direct = 0.0
    for b in range(15):
        lower, upper = b / 15, (b + 1) / 15
        inside = (confidence > lower) & (confidence <= upper)
        if inside.any():
            direct += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    assert em.expected_calibration_error(confidence, correct) == pytest.approx(direct, abs=1e-12)
    table = em.reliability_table(confidence, correct)
    assert table["images"].sum() == 2000 and len(table) == 15
    first = (confidence > 0) & (confidence <= 1 / 15)
    assert table["images"].iloc[0] == first.sum()
    assert table["accuracy"].iloc[0] == pytest.approx(correct[first].mean())


def test_confidences_on_the_bin_edges():
    """Bins are (lower, upper], the first also holding 0: 0 and exactly 1/15 fall in the first bin, 1.0
    in the last; nothing falls off either end."""
    confidence, correct = np.array([0.0, 1 / 15, 1.0]), np.array([False, True, True])
    table = em.reliability_table(confidence, correct)
    assert table["images"].tolist() == [2, 1]
    assert table["lower"].tolist() == pytest.approx([0, 14 / 15]) and table["upper"].tolist() == pytest.approx([1 / 15, 1])
    assert table["accuracy"].tolist() == [0.5, 1.0]
    assert table["mean_confidence"].tolist() == pytest.approx([1 / 30, 1.0])
    # first bin: 2 of 3 images, |0.5 - 1/30|; last bin: |1 - 1| = 0
    assert em.expected_calibration_error(confidence, correct) == pytest.approx(2 / 3 * (0.5 - 1 / 30), abs=1e-12)


def test_calibration_and_agreement_go_into_the_split_metrics():
    frame = predictions_from(hand_matrix(), seed=5)
    frame.loc[:9, ["agree", "disagree"]] = np.nan  # ten images without votes
    metrics = evaluation_metrics(frame, FI_CLASSES)
    correct = frame["label_idx"] == frame["pred_idx"]
    assert metrics["calibration"]["ece"] == pytest.approx(
        em.expected_calibration_error(frame["confidence"].to_numpy(), correct.to_numpy()))
    assert sum(b["images"] for b in metrics["calibration"]["reliability"]) == 100
    voted = frame["agree"].notna()
    expected = spearmanr(frame.loc[voted, "agree"] / 5, frame.loc[voted, "confidence"])
    tracking = metrics["confidence_vs_agreement"]
    assert tracking["spearman"] == pytest.approx(expected.statistic)
    assert tracking["p_value"] == pytest.approx(expected.pvalue)
    assert tracking["images"] == 90 and tracking["no_votes"] == 10
    unanimous = voted & (frame["disagree"] == 0)
    level = next(row for row in tracking["levels"] if row["level"] == "unanimous")
    assert level["images"] == unanimous.sum()
    assert level["accuracy"] == pytest.approx(correct[unanimous].mean())
    assert level["mean_confidence"] == pytest.approx(frame.loc[unanimous, "confidence"].mean())
    json.dumps(metrics, allow_nan=False)  # metrics.json stays strict JSON


def test_a_six_class_run_has_no_wheel_metrics_and_no_error():
    six = ClassSet(("anger", "disgust", "fear", "joy", "sadness", "surprise"))
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"label_idx": rng.integers(0, 6, 60), "pred_idx": rng.integers(0, 6, 60),
                          "confidence": rng.uniform(0.2, 1, 60)})
    metrics = evaluation_metrics(frame, six)
    assert not {"ecc", "emc", "polarity", "confidence_vs_agreement"} & set(metrics)  # no votes either
    assert "calibration" in metrics
    assert em.severity_notes(six) is None and em.wheel_order(six) is None
    with_polarity = ClassSet(six.names, polarity={"anger": "negative", "disgust": "negative", "fear": "negative",
                                                  "joy": "positive", "sadness": "negative",
                                                  "surprise": "neutral"})
    metrics = evaluation_metrics(frame, with_polarity)
    assert "polarity" in metrics and "ecc" not in metrics


def test_old_metrics_without_them_are_computed_from_predictions():
    frame = predictions_from(hand_matrix())
    old = {k: v for k, v in evaluation_metrics(frame, FI_CLASSES).items() if k not in em.KEYS}
    computed = em.split_emotion_metrics(old, frame, FI_CLASSES)
    assert computed["ecc"] == pytest.approx(HAND_ECC) and "calibration" in computed
    assert em.split_emotion_metrics(old, None, FI_CLASSES) == {}


def test_severity_notes_name_the_wheel_distance_and_polarity():
    notes = em.severity_notes(FI_CLASSES)
    assert notes[A["excitement"]][A["fear"]] == "wheel distance 1 · crosses polarity · emotional distance W = 5"
    assert notes[A["anger"]][A["fear"]] == "wheel distance 3 · same polarity · emotional distance W = 4"
    assert notes[A["awe"]][A["awe"]] == ""
    assert em.wheel_order(FI_CLASSES) == ("amusement", "contentment", "awe", "excitement", "fear", "sadness",
                                          "disgust", "anger")


def test_the_wheel_ordered_matrix_puts_cells_where_the_wheel_says():
    from emotion_core.plots import confusion_figure

    counts = hand_matrix()
    figure = confusion_figure(counts.astype(float), counts, normalised=False, classes=FI_CLASSES,
                              order=em.wheel_order(FI_CLASSES), hover_extras=em.severity_notes(FI_CLASSES))
    heatmap, markers = figure.data[0], figure.data[1]
    assert list(heatmap.x) == ["Amusement", "Contentment", "Awe", "Excitement", "Fear", "Sadness", "Disgust", "Anger"]
    # row "Anger" (last on the wheel), column "Fear" (5th): 5 images
    assert heatmap.z[7][4] == 5
    cell = [k for k, data in enumerate(markers.customdata) if list(data[:2]) == ["anger", "fear"]][0]
    assert markers.x[cell] == "Fear" and markers.y[cell] == "Anger"
    assert "wheel distance 3 · same polarity" in markers.customdata[cell][2]
    assert str(markers.text[cell]) == "5"


# ---- the Overview page ------------------------------------------------------------------------

def overview(demo_env) -> AppTest:
    from tests.test_app import start

    return start()


def test_overview_shows_the_emotion_aware_section(demo_env):
    metrics = json.loads((demo_env / "runs" / "demo" / "metrics.json").read_text())["splits"]["test"]
    at = overview(demo_env)
    assert not at.error, [e.value for e in at.error]
    assert any("Emotion-aware" in h.value for h in at.subheader)
    shown = {m.label: m.value for m in at.metric}
    assert shown["ECC"] == f"{metrics['ecc']:.3f}"
    assert shown["Polarity accuracy"] == f"{metrics['polarity']['accuracy']:.1%}"
    assert shown["ECE (15 bins)"] == f"{metrics['calibration']['ece']:.3f}"


def test_overview_computes_them_for_an_old_run(demo_env, tmp_path, monkeypatch):
    home = tmp_path / "workspace"
    shutil.copytree(demo_env / "runs" / "demo", home / "runs" / "demo", ignore=shutil.ignore_patterns("cache"))
    path = home / "runs" / "demo" / "metrics.json"
    metrics = json.loads(path.read_text())
    for split in metrics["splits"].values():
        for key in em.KEYS:
            split.pop(key, None)
    path.write_text(json.dumps(metrics))
    monkeypatch.setenv("EMOLENS_HOME", str(home))
    fresh = json.loads((demo_env / "runs" / "demo" / "metrics.json").read_text())["splits"]["test"]
    at = overview(demo_env)
    assert not at.error, [e.value for e in at.error]
    shown = {m.label: m.value for m in at.metric}
    assert shown["ECC"] == f"{fresh['ecc']:.3f}"


def test_the_confusion_page_orders_the_matrix_by_the_wheel_on_request(demo_env):
    from tests.test_app import start

    at = start("pages/confusion.py")
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["data"][0]["x"][:3] == ["Amusement", "Anger", "Awe"] and "wheel distance" not in json.dumps(chart)
    at.toggle(key="wheel_order").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["data"][0]["x"] == ["Amusement", "Contentment", "Awe", "Excitement", "Fear", "Sadness", "Disgust",
                                     "Anger"]
    assert "crosses polarity" in json.dumps(chart["data"][1]["customdata"])
    assert at.query_params["wheel"] == ["1"] or at.query_params["wheel"] == "1"


def test_the_evaluate_summary_prints_them(demo_env, tmp_path, capsys):
    from emotion_core.emotion_metrics import summary_text
    from training import evaluate

    metrics = json.loads((demo_env / "runs" / "demo" / "metrics.json").read_text())
    line = summary_text(metrics["splits"]["test"])
    assert f"ECC {metrics['splits']['test']['ecc']:.3f}" in line and "polarity accuracy" in line
    assert "ECE" in line and "Spearman" in line
    evaluate.print_summary(metrics)
    assert line in capsys.readouterr().out


def test_images_without_a_confidence_are_left_out_of_calibration():
    frame = predictions_from(hand_matrix(), seed=2)
    frame.loc[:4, "confidence"] = np.nan
    metrics = evaluation_metrics(frame, FI_CLASSES)
    kept = frame.iloc[5:]
    assert sum(b["images"] for b in metrics["calibration"]["reliability"]) == 95
    assert metrics["calibration"]["ece"] == pytest.approx(em.expected_calibration_error(
        kept["confidence"].to_numpy(), (kept["label_idx"] == kept["pred_idx"]).to_numpy()))
    assert metrics["confidence_vs_agreement"]["images"] == 95
    json.dumps(metrics, allow_nan=False)
