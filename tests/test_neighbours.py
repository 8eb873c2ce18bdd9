"""Exact cosine nearest neighbours (emotion_core.neighbours) against a brute-force reference, and the
bad inputs the pages meet: k above the candidates, an empty split, no embeddings, mismatched rows."""
import json

import numpy as np
import pandas as pd
import pytest

from emotion_core.labels import FI_CLASSES
from emotion_core.neighbours import (ZERO_EMBEDDING_NOTE, NeighbourIndex, label_summary, missing_embeddings_message,
                                     neighbours_of, shortfall_note)


def brute_force(embeddings: np.ndarray, query: np.ndarray, k: int, allowed: np.ndarray) -> tuple[list, np.ndarray]:
    """Cosine similarity written out in float64, every allowed row, sorted: the reference."""
    data = embeddings.astype(np.float64)
    q = query.astype(np.float64)
    similarity = data @ q / (np.sqrt((data ** 2).sum(1)) * np.sqrt((q ** 2).sum()))
    rows = [r for r in sorted(range(len(data)), key=lambda r: -similarity[r]) if allowed[r]][:k]
    return rows, similarity[rows]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_queries_equal_brute_force(dtype):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(300, 24)).astype(dtype)  # continuous: no ties
    index = NeighbourIndex(embeddings)
    queries = rng.normal(size=(5, 24)).astype(np.float32)
    rows, similarities = index.query(queries, 7)
    assert rows.shape == similarities.shape == (5, 7)
    for q in range(5):
        expected_rows, expected = brute_force(embeddings, queries[q], 7, np.ones(300, bool))
        assert rows[q].tolist() == expected_rows
        np.testing.assert_allclose(similarities[q], expected, atol=1e-5)


def test_candidates_and_exclusions_equal_brute_force():
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(200, 8)).astype(np.float32)
    index = NeighbourIndex(embeddings)
    mask = rng.random(200) < 0.3
    allowed = mask.copy()
    allowed[[3, 50]] = False
    for candidates in (mask, np.flatnonzero(mask)):  # a boolean mask or row indices
        rows, similarities = index.query(embeddings[3], 10, candidates=candidates, exclude=[3, 50])
        expected_rows, expected = brute_force(embeddings, embeddings[3], 10, allowed)
        assert rows[0].tolist() == expected_rows
        np.testing.assert_allclose(similarities[0], expected, atol=1e-5)
    rows, _ = index.query(embeddings[3], 1)
    assert rows[0].tolist() == [3]  # itself first when not excluded


def test_k_above_the_candidates_returns_what_there_is():
    embeddings = np.random.default_rng(2).normal(size=(30, 4)).astype(np.float32)
    rows, similarities = NeighbourIndex(embeddings).query(embeddings[0], 10, candidates=[0, 5, 9], exclude=[0])
    assert sorted(rows[0].tolist()) == [5, 9] and similarities.shape == (1, 2)
    rows, _ = NeighbourIndex(embeddings).query(embeddings[0], 10, candidates=np.zeros(30, bool))
    assert rows.shape == (1, 0)


def test_ties_come_back_in_row_order_and_zero_vectors_do_not_crash():
    embeddings = np.array([[1, 0], [2, 0], [0, 1], [0, 0], [3, 0]], dtype=np.float16)
    rows, similarities = NeighbourIndex(embeddings).query(np.array([1.0, 0.0]), 5)
    assert rows[0].tolist() == [0, 1, 4, 2, 3]  # three at 1.0 in row order, then 0.0 twice in row order
    np.testing.assert_allclose(similarities[0], [1, 1, 1, 0, 0], atol=1e-6)


def test_bad_embeddings_and_queries_are_one_line_errors():
    with pytest.raises(ValueError, match="NaN or infinite"):
        NeighbourIndex(np.array([[1.0, np.inf], [1.0, 0.0]], dtype=np.float16))
    with pytest.raises(ValueError, match=r"expected \(N, d\)"):
        NeighbourIndex(np.zeros(5))
    with pytest.raises(ValueError, match="4-d"):
        NeighbourIndex(np.ones((3, 4))).query(np.ones(5), 2)


def run_table(n: int = 12, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A predictions table stored in another order than the embeddings (row i = cam_index i)."""
    rng = np.random.default_rng(seed)
    labels = np.array(FI_CLASSES.names)[rng.integers(0, 8, n)]
    table = pd.DataFrame({"image_id": [f"img{i}" for i in range(n)], "label": labels,
                          "pred": np.roll(labels, 1), "split": np.array(["train", "train", "dev", "test"])[
                              np.arange(n) % 4], "cam_index": np.arange(n)})
    embeddings = rng.normal(size=(n, 6)).astype(np.float16)
    return table.sample(frac=1, random_state=seed).reset_index(drop=True), embeddings


def test_neighbours_of_an_image_follow_cam_index_and_leave_it_out():
    table, embeddings = run_table()
    image = table.iloc[0]
    found = neighbours_of(table, embeddings, image_id=image["image_id"], k=4)
    allowed = np.ones(len(embeddings), bool)
    allowed[image["cam_index"]] = False
    expected_rows, expected = brute_force(embeddings, embeddings[image["cam_index"]], 4, allowed)
    assert found["image_id"].tolist() == [f"img{r}" for r in expected_rows]
    np.testing.assert_allclose(found["similarity"], expected, atol=1e-5)
    assert {"label", "pred", "split"} <= set(found.columns)
    in_train = neighbours_of(table, NeighbourIndex(embeddings), image_id="img2", k=3, splits=["train"])
    assert set(in_train["split"]) == {"train"} and "img2" not in set(in_train["image_id"])


def test_an_uploaded_vector_finds_its_image_first():
    table, embeddings = run_table()
    found = neighbours_of(table, embeddings, vector=embeddings[5].astype(np.float32), k=3)
    assert found["image_id"].iloc[0] == "img5" and found["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-6)


def test_an_all_zero_embedding_has_no_neighbours_and_says_why():
    table, embeddings = run_table()
    embeddings[3] = 0  # img3: no feature responded
    for found in (neighbours_of(table, embeddings, vector=np.zeros(6, dtype=np.float32), k=4),
                  neighbours_of(table, embeddings, image_id="img3", k=4, splits=["train", "dev", "test"])):
        assert found.empty and "similarity" in found.columns
        assert shortfall_note(found, 4) == ZERO_EMBEDDING_NOTE and "\n" not in ZERO_EMBEDDING_NOTE
    assert len(neighbours_of(table, embeddings, image_id="img4", k=4)) == 4  # the others still have theirs


def test_fewer_images_than_k_and_an_empty_split_say_so():
    table, embeddings = run_table(n=8)
    found = neighbours_of(table, embeddings, image_id="img0", k=10, splits=["dev"])
    assert len(found) == 2 and found.attrs["searched"] == 2
    assert shortfall_note(found, 10, ["dev"]) == ("Only 2 other evaluated dev images in this run: "
                                                  "showing all of them (asked for 10).")
    assert shortfall_note(found, 2, ["dev"]) is None
    no_train = table[table["split"] != "train"].copy()
    keep = no_train["cam_index"].to_numpy()
    no_train["cam_index"] = np.argsort(np.argsort(keep))  # renumbered as an evaluation of dev,test would
    empty = neighbours_of(no_train, embeddings[np.sort(keep)], image_id="img2", k=5, splits=["train"])
    assert empty.empty and shortfall_note(empty, 5, ["train"]) == ("No other evaluated training images in this "
                                                                   "run to compare with.")
    with pytest.raises(ValueError, match="unknown split 'trian'; valid: train, dev, test"):
        neighbours_of(table, embeddings, image_id="img0", splits=["trian"])


def test_embeddings_that_do_not_match_the_predictions_are_one_line_errors():
    table, embeddings = run_table()
    with pytest.raises(ValueError, match="embeddings.npy has 11 rows but predictions.parquet has 12") as err:
        neighbours_of(table, embeddings[:11], image_id="img0")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="not among"):
        neighbours_of(table, embeddings, image_id="nope")
    broken = table.assign(cam_index=0)
    with pytest.raises(ValueError, match="cam_index"):
        neighbours_of(broken, embeddings, image_id="img0")


def test_label_summary_in_words():
    rows = pd.DataFrame({"label": ["sadness"] * 7 + ["anger"] * 2 + ["fear"], "split": "train"})
    assert label_summary(rows, FI_CLASSES) == "7 of its 10 nearest training images are labelled Sadness."
    assert label_summary(rows, FI_CLASSES, given_label="anger") == (
        "7 of its 10 nearest training images are labelled Sadness; 2 share its own label, Anger.")
    assert label_summary(rows, FI_CLASSES, given_label="sadness") == (
        "7 of its 10 nearest training images are labelled Sadness.")
    mixed = rows.assign(split=["train", "dev"] * 5)
    assert label_summary(mixed.iloc[:1], FI_CLASSES, "awe") == (
        "1 of its 1 nearest training images is labelled Sadness; 0 share its own label, Awe.")
    assert "evaluated images" in label_summary(mixed, FI_CLASSES)
    assert label_summary(rows.iloc[:0], FI_CLASSES) == "It has no neighbours to compare with."


def test_missing_embeddings_message_names_the_one_command(tmp_path):
    run = tmp_path / "my run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"dataset": "/data/fi"}))
    message = missing_embeddings_message(run)
    assert "\n" not in message
    assert message.endswith(f"`python -m training.evaluate --run '{run}' --dataset /data/fi --split train,dev,test`")
    assert "--dataset /other" in missing_embeddings_message(run, "/other")
    (run / "run.json").write_text(json.dumps({"source": "imported predictions"}))
    assert "training.import_predictions" in missing_embeddings_message(run)
