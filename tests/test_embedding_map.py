"""The embedding map: its cache in the run dir, the projection on awkward inputs, the figure, the selection
turned into image ids, and the page (AppTest with an injected selection)."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from emotion_core import embedding_map
from emotion_core.embedding_map import (AGREEMENT, COLOUR_BY, CORRECTNESS, PREDICTED_CLASS, TRUE_CLASS, cached_map,
                                        colour_groups, image_ids_from_selection, map_figure, map_path, project,
                                        selection_summary, split_map, with_predictions)
from emotion_core.fileio import write_npy, write_parquet
from emotion_core.labels import FI_CLASSES
from emotion_core.runs import EMBEDDINGS_FILE, load_predictions

NAMES = FI_CLASSES.names


def write_run(run_dir, n_test: int = 40, n_dev: int = 20, seed: int = 0, labels: list[str] | None = None):
    """A run dir with predictions.parquet (test then dev rows) and matching float16 embeddings, each class
    its own direction, so that the map has something to show."""
    rng = np.random.default_rng(seed)
    n = n_test + n_dev
    label_idx = rng.integers(0, len(NAMES), n) if labels is None else np.array([NAMES.index(c) for c in labels])
    pred_idx = np.where(rng.random(n) < 0.6, label_idx, rng.integers(0, len(NAMES), n))
    agree = rng.integers(2, 6, n)
    table = pd.DataFrame({"image_id": [f"img{i:04d}" for i in range(n)], "path": "none.jpg",
                          "split": ["test"] * n_test + ["dev"] * n_dev,
                          "label": [NAMES[i] for i in label_idx], "pred": [NAMES[i] for i in pred_idx],
                          "confidence": 0.5, "correct": label_idx == pred_idx,
                          "agree": agree, "disagree": 5 - agree, "cam_index": np.arange(n)})
    write_parquet(run_dir / "predictions.parquet", table)
    centres = rng.normal(0, 1, (len(NAMES), 64))
    write_npy(run_dir / EMBEDDINGS_FILE, np.maximum(centres[label_idx] + rng.normal(0, 0.3, (n, 64)), 0).astype(np.float16))
    return table


def counting_projections(monkeypatch) -> list[int]:
    """The number of points of every projection computed from now on."""
    calls, real = [], embedding_map.project

    def counted(embeddings, **kwargs):
        calls.append(len(embeddings))
        return real(embeddings, **kwargs)

    monkeypatch.setattr(embedding_map, "project", counted)
    return calls


def test_the_map_is_computed_once_reused_and_computed_again_when_the_embeddings_change(tmp_path, monkeypatch):
    table = write_run(tmp_path)
    calls = counting_projections(monkeypatch)
    progress = []
    first = split_map(tmp_path, "test", progress=lambda fraction, text: progress.append(fraction))
    assert calls == [40] and progress[-1] == 1.0
    assert first["image_id"].tolist() == table.loc[table["split"] == "test", "image_id"].tolist()
    assert list(first.columns) == ["image_id", "cam_index", "x", "y"] and np.isfinite(first[["x", "y"]]).all().all()
    assert map_path(tmp_path, "test").exists()
    again = split_map(tmp_path, "test")
    assert calls == [40]  # read from the run dir, not computed
    pd.testing.assert_frame_equal(again, first)
    assert split_map(tmp_path, "dev")["image_id"].tolist() == table.loc[table["split"] == "dev", "image_id"].tolist()
    assert calls == [40, 20]  # a map per split

    write_run(tmp_path, seed=1)  # re-evaluated: new embeddings (and predictions)
    stamp = os.stat(tmp_path / EMBEDDINGS_FILE).st_mtime_ns + 10**9
    os.utime(tmp_path / EMBEDDINGS_FILE, ns=(stamp, stamp))  # a clock too coarse to tell the files apart
    assert cached_map(tmp_path, "test") is None
    changed = split_map(tmp_path, "test")
    assert calls == [40, 20, 40]
    assert not np.allclose(changed[["x", "y"]].to_numpy(), first[["x", "y"]].to_numpy())
    assert split_map(tmp_path, "test") is not None and calls == [40, 20, 40]


def test_a_damaged_map_file_is_computed_again(tmp_path, monkeypatch):
    write_run(tmp_path)
    split_map(tmp_path, "test")
    map_path(tmp_path, "test").write_bytes(b"not parquet")
    calls = counting_projections(monkeypatch)
    assert len(split_map(tmp_path, "test")) == 40 and calls == [40]


def test_no_embeddings_rows_that_do_not_match_and_an_empty_split_are_one_line_errors(tmp_path):
    table = write_run(tmp_path)
    with pytest.raises(ValueError, match="no predictions for split 'train'"):
        split_map(tmp_path, "train")
    write_npy(tmp_path / EMBEDDINGS_FILE, np.zeros((len(table) - 1, 8), dtype=np.float16))
    with pytest.raises(ValueError, match="different evaluations"):
        split_map(tmp_path, "test")
    (tmp_path / EMBEDDINGS_FILE).unlink()
    with pytest.raises(ValueError, match="no embeddings.npy"):
        split_map(tmp_path, "test")


def test_the_projection_takes_few_identical_and_bad_points():
    rng = np.random.default_rng(0)
    assert project(np.empty((0, 16))).shape == (0, 2)
    assert project(rng.normal(size=(1, 16))).shape == (1, 2)
    two = project(rng.normal(size=(2, 16)))
    assert two.shape == (2, 2) and not np.allclose(two[0], two[1])
    assert np.allclose(project(np.ones((5, 16))), 0)  # all alike: one spot, no NaN
    row = rng.normal(size=16)
    for n in (2, 5, 150):  # identical rows that are not constant: one spot too, for any n
        assert np.allclose(project(np.tile(row, (n, 1))), 0)
    few = project(rng.normal(size=(12, 16)))
    assert few.shape == (12, 2) and np.isfinite(few).all()
    bad = rng.normal(size=(12, 16))
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        project(bad)


def test_the_layout_of_a_larger_split_keeps_classes_together_and_reports_progress(monkeypatch):
    """The real method (more than SMALL_MAP points): classes that are apart in the embedding stay apart."""
    monkeypatch.setattr(embedding_map, "_umap_compiled", False)  # as in a fresh server process
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 60)
    centres = rng.normal(0, 1, (3, 64)) * 3
    progress = []
    xy = project(centres[labels] + rng.normal(0, 0.5, (len(labels), 64)),
                 progress=lambda fraction, text: progress.append((fraction, text)))
    assert xy.shape == (180, 2) and np.isfinite(xy).all()
    from sklearn.neighbors import KNeighborsClassifier

    agreement = KNeighborsClassifier(5).fit(xy, labels).score(xy, labels)
    assert agreement > 0.95
    assert progress and all(0 <= f <= 1 for f, _ in progress)
    assert [f for f, _ in progress] == sorted(f for f, _ in progress)
    # the first UMAP of a process compiles numba for seconds: its progress text says so, later ones do not
    assert [text for _, text in progress if "compiling UMAP" in text] == \
        ["compiling UMAP (first map on this server, ~20 s), then nearest neighbours of 180 points"]
    assert embedding_map._umap_compiled


def test_colour_groups_follow_the_class_order_and_skip_empty_groups():
    rows = pd.DataFrame({"label": ["sadness", "anger", "anger"], "pred": ["anger", "anger", "awe"],
                         "agreement_level": ["unanimous", "strongly divided", "unanimous"]})
    by_true = colour_groups(rows, TRUE_CLASS, FI_CLASSES)
    assert [name for name, _, _ in by_true] == ["Anger", "Sadness"]
    assert [mask.tolist() for _, mask, _ in by_true] == [[False, True, True], [True, False, False]]
    anger_colour = by_true[0][2]
    by_pred = colour_groups(rows, PREDICTED_CLASS, FI_CLASSES)
    assert [name for name, _, _ in by_pred] == ["Anger", "Awe"] and by_pred[0][2] == anger_colour  # one colour a class
    assert [(n, m.tolist()) for n, m, _ in colour_groups(rows, CORRECTNESS, FI_CLASSES)] == \
        [("correct", [False, True, False]), ("incorrect", [True, False, True])]
    assert [n for n, _, _ in colour_groups(rows, AGREEMENT, FI_CLASSES)] == ["unanimous", "strongly divided"]
    one_class = rows.assign(label="anger", pred="anger")
    assert [n for n, _, _ in colour_groups(one_class, TRUE_CLASS, FI_CLASSES)] == ["Anger"]
    with pytest.raises(ValueError, match="valid: true class"):
        colour_groups(rows, "mood", FI_CLASSES)


def test_the_figure_is_webgl_with_the_image_ids_as_customdata(tmp_path):
    write_run(tmp_path)
    points = with_predictions(split_map(tmp_path, "test"), load_predictions(tmp_path))
    for colour_by in COLOUR_BY:
        figure = map_figure(points, colour_by, FI_CLASSES)
        assert {trace.type for trace in figure.data} == {"scattergl"}
        ids = [i for trace in figure.data for i in trace.customdata]
        assert sorted(ids) == sorted(points["image_id"])  # every point once, whatever the colouring


def test_a_selection_becomes_image_ids():
    event = {"selection": {"points": [{"curve_number": 0, "point_index": 3, "customdata": "img7"},
                                      {"curve_number": 1, "point_index": 0, "customdata": ["img2", "x"]},
                                      {"curve_number": 0, "point_index": 3, "customdata": "img7"}],
                           "box": [{"x": [0, 1], "y": [0, 1]}], "lasso": []}}
    assert image_ids_from_selection(event) == ["img7", "img2"]  # in order, each once
    assert image_ids_from_selection(event["selection"]) == ["img7", "img2"]
    no_customdata = {"selection": {"points": [{"curve_number": 1, "point_index": 1}, {"curve_number": 0,
                                                                                      "point_number": 0}]}}
    assert image_ids_from_selection(no_customdata, [["a", "b"], ["c", "d"]]) == ["d", "a"]
    assert image_ids_from_selection(no_customdata) == []
    assert image_ids_from_selection({"selection": {"points": [{"curve_number": 5, "point_index": 0}]}},
                                    [["a"]]) == []
    assert image_ids_from_selection(None) == [] and image_ids_from_selection({"selection": {"points": []}}) == []


def test_the_selection_summary():
    rows = pd.DataFrame({"label": ["sadness", "sadness", "anger"], "pred": ["fear", "sadness", "fear"]})
    assert selection_summary(rows, FI_CLASSES) == \
        "3 images selected: 2 errors (67%) · most labelled Sadness (2) · most predicted Fear (2)"
    assert selection_summary(rows.head(0), FI_CLASSES) == "No images selected"


# ---- the page


@pytest.fixture(scope="module")
def map_workspace(tmp_path_factory):
    """A workspace with one small run (bench.synthetic_run: images, CAMs, a checkpoint) and embeddings."""
    from bench.synthetic_run import make_run

    home = tmp_path_factory.mktemp("map_workspace")
    run = make_run(home, n=60, distinct_images=6, image_size=(40, 30))
    labels = pd.read_parquet(run / "predictions.parquet")["label_idx"].to_numpy()
    rng = np.random.default_rng(0)
    write_npy(run / EMBEDDINGS_FILE, (rng.normal(0, 1, (len(NAMES), 32))[labels] + rng.normal(0, 0.2, (60, 32)))
              .astype(np.float16))
    return home


def open_map_page(home, monkeypatch):
    from tests.conftest import open_page

    monkeypatch.setenv("EMOLENS_HOME", str(home))
    return open_page("pages/embedding_map.py")


def test_the_page_computes_the_map_once_and_a_selection_fills_the_gallery(map_workspace, monkeypatch):
    run = map_workspace / "runs" / "big"
    map_path(run, "test").unlink(missing_ok=True)
    projections = counting_projections(monkeypatch)
    at = open_map_page(map_workspace, monkeypatch)
    assert map_path(run, "test").exists() and projections == [60]  # computed by the page, cached in the run dir
    assert any(c.value.startswith("60 test images placed by their embeddings") for c in at.caption)
    assert len(at.get("plotly_chart")) == 1
    assert any("No images selected" in i.value for i in at.info)
    predictions = pd.read_parquet(run / "predictions.parquet")
    chosen = predictions["image_id"].iloc[[3, 17, 40]].tolist()
    at.session_state["map_selection"] = {"selection": {"points": [{"customdata": i} for i in chosen]}}
    at.run()
    assert not at.exception and not at.error
    assert any(h.value.startswith("3 images selected") for h in at.subheader)
    cards = " ".join(m.value for m in at.markdown)
    assert all(f"**{i}**" in cards for i in chosen)
    others = set(predictions["image_id"]) - set(chosen)
    assert not any(f"**{i}**" in cards for i in others)
    assert "→" in cards  # images of several cells: each card names its own
    assert projections == [60]  # the reruns read the map, never compute it again


def test_the_page_without_embeddings_names_the_command(map_workspace, tmp_path, monkeypatch):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(map_workspace, home)
    (home / "runs" / "big" / EMBEDDINGS_FILE).unlink()
    at = open_map_page(home, monkeypatch)
    assert any("python -m training.evaluate" in i.value and "no embeddings" in i.value for i in at.info)
    assert not at.get("plotly_chart")
