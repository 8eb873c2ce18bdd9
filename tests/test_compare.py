"""Comparing two runs: the statistics against scipy and hand counts on a constructed pair, and the Compare
page through AppTest on two runs of one tiny dataset (run B: run A's files with rewritten predictions, so
that every bucket and cell is known by construction, whatever the training happened to get wrong)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, bootstrap
from streamlit.testing.v1 import AppTest

from emotion_core import compare
from emotion_core.labels import MIKELS8, ClassSet
from emotion_core.trends import benjamini_hochberg
from emotion_core.votes import with_votes
from tests.conftest import APP

NAMES = list(MIKELS8.names)


def constructed_pair() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two runs' predictions of 40 test images (5 per class) plus 2 dev images. Per image k of class c:
    A right when k < 3, B right when k in (1, 2, 3, 4), so per class 2 both right, 1 only A, 2 only B;
    wrong answers go to the next class (A) or the one after (B). Votes: k = 0 unanimous, 1-2
    non-unanimous, 3-4 strongly divided."""
    rows_a, rows_b = [], []
    for c, label in enumerate(NAMES):
        for k in range(5):
            image = {"image_id": f"{label}_{k}", "path": f"images/{label}_{k}.png", "split": "test", "label": label,
                     "agree": [5, 4, 4, 3, 3][k], "disagree": [0, 1, 1, 2, 2][k]}
            pred_a = label if k < 3 else NAMES[(c + 1) % 8]
            pred_b = label if k in (1, 2, 3, 4) else NAMES[(c + 2) % 8]
            rows_a.append({**image, "pred": pred_a, "confidence": 0.5 + k / 20, "cam_index": len(rows_a)})
            rows_b.append({**image, "pred": pred_b, "confidence": 0.9 - k / 20, "cam_index": len(rows_b)})
    for table in (rows_a, rows_b):
        table.append({"image_id": "dev_0", "path": "images/dev_0.png", "split": "dev", "label": "awe",
                      "agree": 3, "disagree": 0, "pred": "awe", "confidence": 0.7, "cam_index": len(table)})
    return tuple(finish(pd.DataFrame(rows)) for rows in (rows_a, rows_b))


def finish(table: pd.DataFrame, names: list[str] = NAMES) -> pd.DataFrame:
    """label_idx / pred_idx / correct from the names, votes read as load_predictions reads them."""
    table = table.copy()
    table["label_idx"] = table["label"].map(names.index)
    table["pred_idx"] = table["pred"].map(names.index)
    table["correct"] = table["label"] == table["pred"]
    return with_votes(table)


@pytest.fixture
def pair() -> compare.Comparison:
    a, b = constructed_pair()
    return compare.align(a, b, classes=MIKELS8, split="test")


def test_alignment_keeps_the_split_and_buckets_every_image(pair):
    assert len(pair.table) == 40 and pair.note is None and set(pair.table["split"]) == {"test"}
    assert compare.bucket_counts(pair) == {"both_right": 16, "only_a": 8, "only_b": 16, "both_wrong": 0}
    only_b = compare.bucket_rows(pair, compare.ONLY_B)["image_id"]
    assert set(only_b) == {f"{n}_{k}" for n in NAMES for k in (3, 4)}
    assert set(compare.bucket_rows(pair, compare.ONLY_A)["image_id"]) == {f"{n}_0" for n in NAMES}


def test_the_difference_matrix_is_b_minus_a(pair):
    difference = compare.difference_matrix(pair)
    expected = np.zeros((8, 8), dtype=int)
    for c in range(8):
        expected[c, c] = 4 - 3                  # B right on 4 of 5, A on 3
        expected[c, (c + 1) % 8] -= 2           # A's two errors
        expected[c, (c + 2) % 8] += 1           # B's one error
    np.testing.assert_array_equal(difference, expected)
    assert (difference.sum(axis=1) == 0).all()  # the same images per true class in both runs
    rows = compare.cell_rows(pair, "anger", "awe")  # A's errors on anger go to awe: both left B's cell
    assert rows["image_id"].tolist() == ["anger_3", "anger_4"] and set(rows["change"]) == {compare.LEFT}
    assert (compare.cell_sentence(rows, "anger", "awe", MIKELS8)
            == "Anger → Awe: run A 2, run B 0 (−2): 0 entered, 2 left, 0 in both")
    diagonal = compare.cell_rows(pair, "anger", "anger")
    assert dict(zip(diagonal["image_id"], diagonal["change"])) == {
        "anger_3": compare.ENTERED, "anger_4": compare.ENTERED, "anger_1": compare.STAYED,
        "anger_2": compare.STAYED, "anger_0": compare.LEFT}


def test_the_bootstrap_interval_is_scipys_paired_bootstrap(pair):
    a, b = pair.table["correct_a"].to_numpy(float), pair.table["correct_b"].to_numpy(float)
    result = compare.accuracy_difference(a, b, n_resamples=2000, seed=7)
    expected = bootstrap((a, b), lambda x, y, axis=-1: y.mean(axis=axis) - x.mean(axis=axis), paired=True,
                         vectorized=True, n_resamples=2000, method="BCa", rng=np.random.default_rng(7))
    assert result["difference"] == pytest.approx(0.2)
    assert (result["low"], result["high"]) == pytest.approx(tuple(expected.confidence_interval), abs=1e-12)
    assert result["low"] < 0.2 < result["high"]
    # paired: both runs' outcomes of an image are resampled together. B = A plus 4 fixed images out of 200:
    # the paired interval is about ±0.02 wide, resampling the runs independently would give about ±0.1.
    a = np.random.default_rng(0).random(200) < 0.5
    b = a.copy()
    b[np.nonzero(~a)[0][:4]] = True
    narrow = compare.accuracy_difference(a, b, n_resamples=2000)
    assert narrow["difference"] == pytest.approx(0.02) and narrow["high"] - narrow["low"] < 0.06
    again = compare.accuracy_difference(pair.table["correct_a"], pair.table["correct_b"], n_resamples=2000, seed=7)
    assert (again["low"], again["high"]) == (result["low"], result["high"])  # seeded


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_pairs(pair):
    result = compare.mcnemar(pair.table["correct_a"], pair.table["correct_b"])
    assert (result["only_a"], result["only_b"]) == (8, 16)
    assert result["p_value"] == pytest.approx(binomtest(16, 24, 0.5).pvalue) and result["note"] is None
    assert result["p_value"] == pytest.approx(0.1515, abs=1e-4)


def test_no_discordant_pairs_is_p_one_with_a_note_and_a_zero_interval():
    same = pd.Series([True, False, True, True])
    result = compare.mcnemar(same, same)
    assert result["p_value"] == 1.0 and "no discordant pairs" in result["note"]
    interval = compare.accuracy_difference(same, same)
    assert (interval["difference"], interval["low"], interval["high"]) == (0.0, 0.0, 0.0)


def test_per_class_tests_with_benjamini_hochberg(pair):
    a, b = constructed_pair()
    b.loc[b["label"] == "fear", ["pred", "pred_idx", "correct"]] = ["fear", NAMES.index("fear"), True]
    b.loc[b["label"] == "anger", ["pred", "pred_idx", "correct"]] = ["sadness", NAMES.index("sadness"), False]
    table = compare.class_table(compare.align(a, b, classes=MIKELS8, split="test"))
    by_name = table.set_index("emotion")
    assert by_name.loc["Fear", ["only_a", "only_b"]].tolist() == [0, 2]
    assert by_name.loc["Anger", ["only_a", "only_b"]].tolist() == [3, 0]
    assert by_name.loc["Anger", "p_value"] == pytest.approx(binomtest(0, 3, 0.5).pvalue)
    np.testing.assert_allclose(table["q_value"], benjamini_hochberg(table["p_value"]))
    assert by_name.loc["Awe", "recall_a"] == pytest.approx(3 / 5) and by_name.loc["Awe", "recall_b"] == pytest.approx(4 / 5)


def test_flips_by_vote_agreement(pair):
    flips = compare.flips_by_agreement(pair).set_index("level")
    assert flips.loc["unanimous", ["images", "only_a", "only_b", "net_gain"]].tolist() == [8, 8, 0, -8]
    assert flips.loc["strongly divided", ["images", "only_a", "only_b", "net_gain"]].tolist() == [16, 0, 16, 16]
    assert flips.loc["non-unanimous, not strongly divided", "both_right"] == 16
    sentence = compare.flips_sentence(compare.flips_by_agreement(pair))
    assert sentence.startswith("Run B gets 16 images right that A got wrong and 8 the other way round (net +8)")
    assert "+16 on strongly divided images" in sentence and "−8 on unanimous images" in sentence


def test_metrics_side_by_side_name_the_winner(pair):
    table = compare.metric_table(pair).set_index("metric")
    assert table.loc["Accuracy", ["a", "b", "difference", "winner"]].tolist() == ["60.0%", "80.0%", "+20.0 pp", "B"]
    assert table.loc["Macro F1", "winner"] == "B"


def test_partial_overlap_is_compared_on_the_intersection_with_a_note():
    a, b = constructed_pair()
    result = compare.align(a, b[~b["image_id"].isin(["anger_0", "awe_1"])], classes=MIKELS8, split="test")
    assert len(result.table) == 38 and "2 only in run A" in result.note and "0 only in run B" in result.note


@pytest.mark.parametrize("change, message", [
    (lambda b: b.assign(image_id="x" + b["image_id"]), "no image in common on the test split"),
    (lambda b: b.assign(split="dev"), "Run B has no predictions on the test split"),
    (lambda b: b.assign(label=np.where(b["image_id"] == "anger_0", "fear", b["label"])), "different labels"),
])
def test_different_image_sets_are_refused_in_one_line(change, message):
    a, b = constructed_pair()
    with pytest.raises(ValueError, match=message) as raised:
        compare.align(a, change(b), classes=MIKELS8, split="test")
    assert "\n" not in str(raised.value)


def test_different_datasets_or_class_sets_are_refused_in_one_line():
    with pytest.raises(ValueError, match="dataset 'fi' and run B on 'emoset'"):
        compare.check_comparable("/data/fi", "/other/emoset", MIKELS8, MIKELS8)
    six = ClassSet(("surprise", "joy", "fear", "anger", "disgust", "sadness"))
    with pytest.raises(ValueError, match="different class sets"):
        compare.check_comparable("/data/fi", "/data/fi", MIKELS8, six)
    compare.check_comparable("/a/fi", "/b/fi", MIKELS8, ClassSet(tuple(reversed(NAMES))))  # order may differ


def test_run_b_in_another_class_order_is_compared_by_name(pair):
    a, b = constructed_pair()
    reversed_names = list(reversed(NAMES))
    b = finish(b.drop(columns=["label_idx", "pred_idx", "correct"]), reversed_names)
    again = compare.align(a, b, classes=MIKELS8, split="test")
    np.testing.assert_array_equal(compare.difference_matrix(again), compare.difference_matrix(pair))


def test_a_single_class_split_and_a_table_without_votes():
    a, b = constructed_pair()
    only_anger = [t[(t["label"] == "anger") | (t["split"] == "dev")] for t in (a, b)]
    single = compare.align(*only_anger, classes=MIKELS8, split="test")
    table = compare.class_table(single)
    assert table["images"].tolist() == [0, 5, 0, 0, 0, 0, 0, 0]
    assert table["q_value"].notna().tolist() == [False, True] + [False] * 6  # only the tested class
    assert table.loc[1, "q_value"] == pytest.approx(table.loc[1, "p_value"])
    no_votes = [finish(t.drop(columns=["agree", "disagree", "agreement", "agreement_level"])) for t in (a, b)]
    flips = compare.flips_by_agreement(compare.align(*no_votes, classes=MIKELS8, split="test"))
    assert flips["level"].tolist() == ["no votes"] and flips["net_gain"].tolist() == [8]


# ---- the Compare page -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One tiny evaluated run on Mikels' eight (2 test images per class), as training writes it."""
    from tests.test_class_sets import small_config, write_images_dataset
    from training.schedule import Stage
    from training.train import train

    root = tmp_path_factory.mktemp("compare")
    dataset = write_images_dataset(root / "dataset", MIKELS8)
    train(small_config(dataset, root / "home" / "runs" / "a"), [Stage("all", ["all"], 1e-3, 1)])
    return root / "home"


def rewrite_predictions(run: Path, right) -> pd.DataFrame:
    """Set the run's predictions: right(label, i) says whether the i-th test image of a class is right;
    a wrong one is predicted as the next class. Returns the new test rows."""
    table = pd.read_parquet(run / "predictions.parquet")
    position = table.groupby(["split", "label"]).cumcount()
    wrong = table["label"].map(lambda n: NAMES[(NAMES.index(n) + 1) % 8])
    table["pred"] = [label if right(label, i) else w for label, i, w in zip(table["label"], position, wrong)]
    table["pred_idx"] = table["pred"].map(NAMES.index)
    table["correct"] = table["pred"] == table["label"]
    table.to_parquet(run / "predictions.parquet")
    return table[table["split"] == "test"]


@pytest.fixture
def two_runs(trained_run, tmp_path, monkeypatch) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """Runs a and b of one dataset: a right on every class's first test image, b on the second (and on
    amusement's first too)."""
    home = tmp_path / "home"
    shutil.copytree(trained_run, home)
    shutil.copytree(home / "runs" / "a", home / "runs" / "b")
    test_a = rewrite_predictions(home / "runs" / "a", lambda label, i: i == 0)
    test_b = rewrite_predictions(home / "runs" / "b", lambda label, i: i == 1 or label == "amusement")
    monkeypatch.setenv("EMOLENS_HOME", str(home))
    return home, test_a, test_b


def open_compare(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    return at


def gallery_ids(at: AppTest) -> set[str]:
    return {m.value.split("**")[1] for m in at.markdown if m.value.startswith("**") and " · true " in m.value}


def test_the_page_compares_two_runs_and_a_bucket_shows_exactly_its_images(two_runs):
    _, test_a, test_b = two_runs
    at = open_compare()
    assert not at.error, [e.value for e in at.error]
    at.selectbox(key="compare_a_picker").set_value("a").run()
    at.selectbox(key="compare_b_picker").set_value("b").run()
    metrics = at.dataframe[0].value.set_index("Metric")
    assert metrics.loc["Accuracy", ["Run A", "Run B", "B − A", "Better"]].tolist() == ["50.0%", "56.2%", "+6.2 pp", "B"]
    text = "\n".join(m.value for m in at.markdown)
    assert "Exact McNemar test:** 7 images only A got right, 8 only B: p = 1.000" in text
    a_right, b_right = set(test_a.loc[test_a["correct"], "image_id"]), set(test_b.loc[test_b["correct"], "image_id"])
    for bucket, expected in (("only_a", a_right - b_right), ("only_b", b_right - a_right),
                             ("both_right", a_right & b_right), ("both_wrong", set(test_a["image_id"]) - a_right - b_right)):
        at.button(key=f"bucket_{bucket}").click().run()
        assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
        assert gallery_ids(at) == expected, bucket
        assert at.query_params["bucket"] in (bucket, [bucket])
    assert at.query_params["run_a"] in ("a", ["a"]) and at.query_params["run_b"] in ("b", ["b"])
    at.button(key="bucket_only_b").click().run()
    at.toggle(key="compare_cams").set_value(True).run()  # both runs have maps: the Grad-CAM pairs
    assert not at.exception and not at.error
    assert gallery_ids(at) == b_right - a_right
    assert any("Left: run A's (a) Grad-CAM" in c.value for c in at.caption)


def test_a_difference_cell_from_the_select_boxes_and_a_shared_link(two_runs):
    _, test_a, test_b = two_runs
    at = open_compare({"run_a": "a", "run_b": "b", "compare_split": "test", "diff_true": "anger", "diff_pred": "awe"})
    # anger's 2 test images: A wrong (awe) on the second, B wrong (awe) on the first
    assert any(s.value == "Anger → Awe: run A 1, run B 1 (0): 1 entered, 1 left, 0 in both" for s in at.subheader)
    assert gallery_ids(at) == set(test_a.loc[test_a["label"] == "anger", "image_id"])
    at.selectbox(key="diff_pred_box").set_value("anger").run()
    assert any(s.value.startswith("Anger → Anger: run A 1, run B 1") for s in at.subheader)
    assert at.query_params["diff_pred"] in ("anger", ["anger"]) and "bucket" not in at.query_params


def test_another_dataset_is_refused_in_one_line(two_runs):
    home, *_ = two_runs
    metrics_file = home / "runs" / "b" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    metrics_file.write_text(json.dumps({**metrics, "dataset": "/somewhere/emoset"}))
    at = open_compare({"run_a": "a", "run_b": "b"})
    assert [e.value for e in at.error] == ["Run A was evaluated on dataset 'dataset' and run B on 'emoset': "
                                           "pick two runs of the same dataset."]
    assert not at.dataframe


def test_a_run_without_maps_hides_its_grad_cam_with_a_note(two_runs):
    home, *_ = two_runs
    (home / "runs" / "b" / "cams.npy").unlink()
    at = open_compare({"run_a": "a", "run_b": "b"})
    assert any(c.value == "No Grad-CAM maps in run B (b)." for c in at.caption)
    at.toggle(key="compare_cams").set_value(True).run()
    assert not at.exception and not at.error
    assert any(c.value == "Grad-CAM of its predicted class from run A (a) only" for c in at.caption)
    (home / "runs" / "a" / "cams.npy").unlink()
    at = open_compare({"run_a": "a", "run_b": "b"})
    assert all(t.key != "compare_cams" for t in at.toggle)
    assert any("the toggle is hidden" in c.value for c in at.caption)


def test_a_run_deleted_while_the_page_is_open_is_one_line(two_runs):
    home, *_ = two_runs
    shutil.copytree(home / "runs" / "b", home / "runs" / "c")
    at = open_compare({"run_a": "a", "run_b": "b"})
    shutil.rmtree(home / "runs" / "b")
    at.button(key="bucket_only_a").click().run()
    assert not at.exception, at.exception
    assert [w.value for w in at.warning] == ["Run b is no longer in the workspace (deleted or moved): pick another run."]
    assert not at.error and at.selectbox(key="compare_b_picker").value == "c"


def test_identical_runs_say_there_are_no_discordant_pairs(two_runs):
    at = open_compare({"run_a": "a", "run_b": "a"})
    assert not at.exception and not at.error
    assert any("no discordant pairs" in c.value.lower() for c in at.caption)
    assert any(i.value.startswith("Run A and run B are the same run") for i in at.info)


def test_each_run_says_what_it_trained_towards(two_runs):
    """Run A trained one-hot (its run.json as training wrote it); run B's run.json says votes with the wheel spread."""
    home, _, _ = two_runs
    path = home / "runs" / "b" / "run.json"
    run = json.loads(path.read_text())
    assert run["config"]["target"] == "onehot"
    run["config"].update(target="votes", spread="wheel")
    run["target"] = {"options": "votes (spread wheel)", "train_images": {"agree/disagree votes": 16}}
    path.write_text(json.dumps(run))
    at = open_compare({"run_a": "a", "run_b": "b"})
    assert not at.exception and not at.error
    assert any("A: a (trained on: one-hot) · B: b (trained on: votes (wheel spread))" in c.value for c in at.caption)
    assert any(o.endswith("· trained on: votes (wheel spread)") and o.startswith("b ")
               for o in at.selectbox(key="compare_b_picker").options)
    at.switch_page("pages/overview.py").run()
    assert any("trained on: one-hot" in c.value for c in at.caption)


# ---- a run without confidences, one-hot vote shares (review of issue 12) ----------------------------

def test_a_run_without_confidence_drops_the_confidence_sorts():
    a, b = constructed_pair()
    comparison = compare.align(a, b.drop(columns="confidence"), classes=MIKELS8, split="test")
    rows = comparison.table
    assert "confidence_a" not in rows and "confidence_b" not in rows  # align keeps only what both have
    assert compare.sort_keys(rows) == (compare.SORT_KEYS[0], compare.SORT_KEYS[3])
    assert compare.sort_rows(rows, compare.SORT_KEYS[3])["agreement"].is_monotonic_increasing
    with pytest.raises(ValueError, match="cannot sort by \"B's confidence"):
        compare.sort_rows(rows, compare.SORT_KEYS[1])
    assert compare.sort_keys(compare.align(a, b, classes=MIKELS8, split="test").table) == compare.SORT_KEYS


def test_a_card_without_confidence_and_with_one_hot_shares():
    from pages.shared.compare_gallery import card_text

    a, b = constructed_pair()
    row = compare.align(a, b.drop(columns="confidence"), classes=MIKELS8, split="test").table.iloc[0].to_dict()
    row.update({f"votes_{name}": float(name == row["label"]) for name in NAMES})  # Emotion6: all probability on one class
    text = card_text(row, [], MIKELS8, shares=True)
    assert "A: Amusement — ✓" in text and "votes 100% for Amusement" in text and "1 of 1" not in text
