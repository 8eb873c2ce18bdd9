"""training.import_predictions: another framework's outputs become a run dir of the evaluated-run contract."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from emotion_core.runs import list_runs, load_embeddings, load_predictions
from tests.conftest import open_page
from tests.test_class_sets import SIX, _run_cli, write_images_dataset
from training import import_predictions

NAMES = list(SIX.names)
P_COLUMNS = [f"p_{c}" for c in NAMES]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_images_dataset(tmp_path_factory.mktemp("predictions") / "dataset", SIX)


@pytest.fixture(scope="module")
def manifest(dataset) -> pd.DataFrame:
    return pd.read_parquet(dataset / "manifest.parquet")


def probability_file(manifest: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Every image of the dataset, in a shuffled order, with Dirichlet probabilities."""
    rng = np.random.default_rng(seed)
    rows = manifest.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    frame = pd.DataFrame(rng.dirichlet(np.ones(len(NAMES)), size=len(rows)), columns=P_COLUMNS)
    frame.insert(0, "image_id", rows["image_id"])
    return frame


def run(dataset: Path, frame: pd.DataFrame, tmp_path: Path, *extra: str, name: str = "preds.csv") -> Path:
    path = tmp_path / name
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    out = tmp_path / "run"
    import_predictions.main(import_predictions.get_args_parser().parse_args(
        ["--dataset", str(dataset), "--predictions", str(path), "--out", str(out), *extra]))
    return out


def refused(dataset: Path, frame: pd.DataFrame, tmp_path: Path, capsys, monkeypatch, *extra: str) -> str:
    path = tmp_path / "preds.csv"
    frame.to_csv(path, index=False)
    err = _run_cli("training.import_predictions", ["--dataset", str(dataset), "--predictions", str(path),
                                                   "--out", str(tmp_path / "run"), *extra], capsys, monkeypatch)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()  # nothing written
    return err


def by_id(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "predictions.parquet").set_index("image_id")


@pytest.mark.parametrize("name", ["preds.csv", "preds.parquet"])
def test_probability_columns_make_the_run_dir_contract(dataset, manifest, tmp_path, name):
    frame = probability_file(manifest)
    out = run(dataset, frame, tmp_path, name=name)
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "predictions.parquet", "run.json"]
    table = by_id(out)
    expected = frame.set_index("image_id").loc[table.index]
    assert np.allclose(table[P_COLUMNS].to_numpy(), expected[P_COLUMNS].to_numpy(), atol=1e-6)
    assert (table["pred"] == expected[P_COLUMNS].idxmax(axis=1).str[2:]).all()
    truth = manifest.set_index("image_id").loc[table.index]
    assert (table["label"] == truth["label"]).all() and (table["split"] == truth["split"]).all()
    assert (table["correct"] == (table["pred"] == table["label"])).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["source"] == "imported predictions" and metrics["classes"]["names"] == NAMES
    test = table[table["split"] == "test"]
    assert metrics["splits"]["test"]["accuracy"] == pytest.approx(test["correct"].mean())
    assert list(metrics["splits"]) == ["train", "dev", "test"]
    assert json.loads((out / "run.json").read_text())["source"] == "imported predictions"
    loaded = load_predictions(out)  # the dashboard's reader
    assert len(loaded) == len(manifest) and loaded["cam_index"].tolist() == list(range(len(manifest)))
    (info,) = list_runs(out.parent)
    assert info.complete and not info.has_model and info.imported


def test_class_name_columns_in_any_case_and_order_are_the_probabilities(dataset, manifest, tmp_path):
    frame = probability_file(manifest)
    renamed = frame.rename(columns={f"p_{n}": d.upper() for n, d in zip(NAMES, SIX.display)})
    renamed = renamed[["image_id"] + [d.upper() for d in SIX.display][::-1]]  # reversed column order
    table = by_id(run(dataset, renamed, tmp_path))
    expected = frame.set_index("image_id").loc[table.index, P_COLUMNS].to_numpy()
    assert np.allclose(table[P_COLUMNS].to_numpy(), expected, atol=1e-6)


@pytest.mark.parametrize("column", ["pred", "pred_idx"])
def test_a_predicted_label_only_file_gives_one_hot_probabilities(dataset, manifest, tmp_path, column):
    rng = np.random.default_rng(1)
    predicted = rng.integers(0, len(NAMES), len(manifest))
    values = predicted if column == "pred_idx" else [SIX.display[i] if i % 2 else NAMES[i] for i in predicted]
    out = run(dataset, pd.DataFrame({"image_id": manifest["image_id"], column: values}), tmp_path)
    table = by_id(out).loc[manifest["image_id"]]
    assert table["pred_idx"].tolist() == predicted.tolist()
    assert (table["confidence"] == 1.0).all() and (table[P_COLUMNS].sum(axis=1) == 1.0).all()
    assert json.loads((out / "metrics.json").read_text())["has_probabilities"] is False


def bad_probability_file(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row matching no image, one image named twice, one row summing to 2, one with a missing value."""
    frame = probability_file(manifest)
    extra = frame.iloc[[0, 1]].copy()
    extra.loc[extra.index[0], "image_id"] = "no_such_image"
    frame = pd.concat([frame, extra], ignore_index=True)  # row 1's image twice now
    frame.loc[2, P_COLUMNS] = frame.loc[2, P_COLUMNS] * 2
    frame.loc[3, "p_joy"] = np.nan
    return frame


def test_each_kind_of_bad_row_is_counted_and_refused(dataset, manifest, tmp_path, capsys, monkeypatch):
    err = refused(dataset, bad_probability_file(manifest), tmp_path, capsys, monkeypatch)
    assert "1 row matching no image of the dataset (e.g. 'no_such_image')" in err
    assert "2 rows naming an image that another row names too" in err
    assert "1 row with probabilities not summing to 1" in err
    assert "1 row with missing, negative or non-numeric probabilities" in err
    assert "--on-bad skip" in err


def test_bad_rows_are_skipped_when_asked_and_reported(dataset, manifest, tmp_path, capsys):
    frame = bad_probability_file(manifest)
    out = run(dataset, frame, tmp_path, "--on-bad", "skip")
    report = json.loads((out / "run.json").read_text())["import_report"]
    assert report["skipped"] == {"unmatched": 1, "duplicate": 2, "bad_sum": 1, "invalid": 1}
    assert report["rows_in_file"] == len(frame) and report["rows_imported"] == len(frame) - 5
    bad_ids = {"no_such_image", frame.loc[1, "image_id"], frame.loc[2, "image_id"], frame.loc[3, "image_id"]}
    assert set(by_id(out).index) == set(manifest["image_id"]) - bad_ids
    assert "skipped: 2 rows naming an image that another row names too" in capsys.readouterr().out


def test_renormalise_fixes_rows_that_do_not_sum_to_one(dataset, manifest, tmp_path):
    frame = probability_file(manifest)
    frame[P_COLUMNS] = frame[P_COLUMNS] * 3  # e.g. unnormalised scores
    table = by_id(run(dataset, frame, tmp_path, "--renormalise"))
    assert np.allclose(table[P_COLUMNS].sum(axis=1), 1.0, atol=1e-6)


def test_unknown_class_names_are_counted_and_refused_or_skipped(dataset, manifest, tmp_path, capsys, monkeypatch):
    labels = pd.DataFrame({"image_id": manifest["image_id"], "pred": [NAMES[i % 6] for i in range(len(manifest))]})
    labels.loc[[0, 5, 7], "pred"] = ["amusement", "neutral", " neutral"]
    err = refused(dataset, labels, tmp_path, capsys, monkeypatch)
    assert "3 rows with a class not in the dataset: 'neutral' (2), 'amusement' (1)" in err  # values, not image keys
    out = run(dataset, labels, tmp_path, "--on-bad", "skip")
    assert len(by_id(out)) == len(manifest) - 3
    assert "skipped: 3 rows with a class not in the dataset: 'neutral' (2), 'amusement' (1)" in capsys.readouterr().out


def test_p_columns_that_are_no_class_are_ignored_with_a_note(dataset, manifest, tmp_path, capsys):
    frame = probability_file(manifest)
    frame["p_max"] = frame[P_COLUMNS].max(axis=1)
    frame["p_entropy"] = 1.3
    out = run(dataset, frame, tmp_path)  # on-bad refuse: still imported
    assert len(by_id(out)) == len(manifest)
    assert "note: 2 p_ column(s) that are no class of the dataset ignored: p_max, p_entropy" in capsys.readouterr().out
    assert "p_ columns" in import_predictions.get_args_parser().format_help()  # documented


def test_p_columns_of_another_class_set_are_refused(dataset, manifest, tmp_path, capsys, monkeypatch):
    frame = probability_file(manifest)
    frame[P_COLUMNS] = frame[P_COLUMNS] * 0.8
    frame["p_neutral"] = 0.2  # the file's model has a seventh class: rows sum to 1 only with it
    err = refused(dataset, frame, tmp_path, capsys, monkeypatch, "--on-bad", "skip")
    assert f"{len(frame)} rows sum to 1 only with p_neutral added" in err
    others = pd.DataFrame({"image_id": manifest["image_id"], "p_happy": 0.5, "p_sad": 0.5})
    err = refused(dataset, others, tmp_path, capsys, monkeypatch)
    assert "no p_ column names a class of the dataset (p_happy, p_sad)" in err


def path_keyed_file(manifest: pd.DataFrame, dataset: Path) -> pd.DataFrame:
    """Paths relative to the dataset dir (as in its manifest) and, every other row, absolute."""
    frame = probability_file(manifest)
    paths = manifest.set_index("image_id").loc[frame.pop("image_id"), "path"].tolist()
    frame.insert(0, "path", [str(dataset / p) if i % 2 else p for i, p in enumerate(paths)])
    return frame


def test_paths_relative_to_the_dataset_or_absolute_are_keys(dataset, manifest, tmp_path):
    assert len(by_id(run(dataset, path_keyed_file(manifest, dataset), tmp_path))) == len(manifest)


def test_path_keys_match_with_a_relative_dataset_dir_from_another_working_dir(dataset, manifest, tmp_path,
                                                                              monkeypatch):
    path_keyed_file(manifest, dataset).to_csv(tmp_path / "preds.csv", index=False)
    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(dataset, tmp_path)  # ../predictions0/dataset
    assert not Path(relative).is_absolute() and relative.startswith("..")
    import_predictions.main(import_predictions.get_args_parser().parse_args(
        ["--dataset", relative, "--predictions", "preds.csv", "--out", "run"]))
    assert len(by_id(tmp_path / "run")) == len(manifest)


@pytest.mark.parametrize("maps", [1, 2])
def test_cams_with_one_or_two_maps_follow_their_rows(dataset, manifest, tmp_path, maps):
    frame = bad_probability_file(manifest)  # skipped rows: the maps of the others must still match
    rng = np.random.default_rng(2)
    given = rng.random((len(frame), maps, 5, 5)).astype(np.float32) * 7
    np.save(tmp_path / "cams.npy", given[:, 0] if maps == 1 else given)
    embeddings = rng.normal(size=(len(frame), 4)).astype(np.float32)
    np.save(tmp_path / "emb.npy", embeddings)
    out = run(dataset, frame, tmp_path, "--on-bad", "skip", "--cams", str(tmp_path / "cams.npy"),
              "--embeddings", str(tmp_path / "emb.npy"))
    table = pd.read_parquet(out / "predictions.parquet")
    cams, stored = np.load(out / "cams.npy"), load_embeddings(out)
    assert cams.shape == (len(table), 2, 5, 5) and cams.dtype == np.float16
    row_of = {image_id: i for i, image_id in enumerate(frame["image_id"]) if i not in (1, 2, 3)}
    for _, row in table.iterrows():
        source, mine = given[row_of[row["image_id"]]], cams[row["cam_index"]].astype(np.float32)
        assert np.allclose(mine[0], source[0] / source[0].max(), atol=1e-3)
        if maps == 2:
            assert np.allclose(mine[1], source[1] / source[1].max(), atol=1e-3)
        else:  # the true class's map is the predicted one's where they are the same class, else empty
            assert np.allclose(mine[1], mine[0] if row["correct"] else 0.0)
        assert np.array_equal(stored[row["cam_index"]], embeddings[row_of[row["image_id"]]])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["cam_shape"] == [5, 5]
    assert metrics["cam_classes"] == (["predicted", "true"] if maps == 2 else ["predicted"])


def test_maps_of_the_wrong_count_are_refused_before_anything_is_written(dataset, manifest, tmp_path, capsys,
                                                                        monkeypatch):
    frame = probability_file(manifest)
    np.save(tmp_path / "cams.npy", np.zeros((len(frame) - 1, 5, 5), dtype=np.float32))
    err = refused(dataset, frame, tmp_path, capsys, monkeypatch, "--cams", str(tmp_path / "cams.npy"))
    assert f"{len(frame) - 1} maps for {len(frame)} rows" in err


def test_maps_without_pixels_are_refused_in_one_line(dataset, manifest, tmp_path, capsys, monkeypatch):
    frame = probability_file(manifest)
    np.save(tmp_path / "cams.npy", np.zeros((len(frame), 0, 0), dtype=np.float32))
    err = refused(dataset, frame, tmp_path, capsys, monkeypatch, "--cams", str(tmp_path / "cams.npy"))
    assert f"maps of shape ({len(frame)}, 0, 0) hold no pixels" in err


def test_out_naming_an_existing_file_is_one_line(dataset, manifest, tmp_path, capsys, monkeypatch):
    probability_file(manifest).to_csv(tmp_path / "preds.csv", index=False)
    (tmp_path / "afile").write_text("x")
    err = _run_cli("training.import_predictions", ["--dataset", str(dataset), "--predictions",
                                                   str(tmp_path / "preds.csv"), "--out", str(tmp_path / "afile")],
                   capsys, monkeypatch)
    assert err == f"error: --out {tmp_path / 'afile'} is a file, not a folder; choose a run dir\n"


def test_only_a_run_json_saying_imported_predictions_makes_the_badge(dataset, manifest, tmp_path):
    imported = run(dataset, probability_file(manifest), tmp_path)
    deleted = tmp_path / "checkpoint-deleted"  # an evaluated model run whose checkpoint.pt was removed
    shutil.copytree(imported, deleted)
    (deleted / "run.json").write_text(json.dumps({"model": {"arch": "vgg19"}}))
    by_name = {r.name: r for r in list_runs(tmp_path)}
    assert by_name["run"].imported and by_name["run"].complete and not by_name["run"].has_model
    assert not by_name["checkpoint-deleted"].imported and not by_name["checkpoint-deleted"].has_model
    assert not by_name["checkpoint-deleted"].complete  # listed as incomplete: not shown as a run to analyse


def test_an_existing_run_is_not_replaced_without_overwrite(dataset, manifest, tmp_path, capsys, monkeypatch):
    frame = probability_file(manifest)
    out = run(dataset, frame, tmp_path)
    before = (out / "predictions.parquet").read_bytes()
    path = tmp_path / "preds.csv"
    err = _run_cli("training.import_predictions", ["--dataset", str(dataset), "--predictions", str(path),
                                                   "--out", str(out)], capsys, monkeypatch)
    assert "already holds a run" in err and (out / "predictions.parquet").read_bytes() == before
    run(dataset, probability_file(manifest, seed=5), tmp_path, "--overwrite")
    assert (out / "predictions.parquet").read_bytes() != before


# ---- the dashboard on an imported run ---------------------------------------------------------

ALL_PAGES = ["pages/overview.py", "pages/confusion.py", "pages/inspector.py", "pages/trends.py",
             "pages/agreement.py", "pages/live.py"]


@pytest.fixture(params=["with maps", "without maps"])
def imported_env(request, dataset, manifest, tmp_path, monkeypatch) -> Path:
    """A workspace whose only run is imported predictions (predicted-class maps, or none at all)."""
    frame = probability_file(manifest)
    extra = []
    if request.param == "with maps":
        np.save(tmp_path / "cams.npy", np.random.default_rng(0).random((len(frame), 4, 4)).astype(np.float32))
        extra = ["--cams", str(tmp_path / "cams.npy")]
    out = run(dataset, frame, tmp_path, *extra)
    (tmp_path / "home" / "runs").mkdir(parents=True)
    out.rename(tmp_path / "home" / "runs" / "other-framework")
    monkeypatch.setenv("EMOLENS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def page_text(at: AppTest) -> str:
    kinds = ("title", "subheader", "markdown", "caption", "info", "warning")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_page_shows_an_imported_run_with_its_badge(imported_env, page):
    at = open_page(page)
    assert "imported predictions" in page_text(at)
    assert "other-framework (imported predictions)" in at.selectbox(key="run_picker").options
    if page in ("pages/live.py", "pages/inspector.py"):
        assert "no model to run" in page_text(at)
    if page == "pages/live.py":
        assert not at.file_uploader
    if page == "pages/trends.py":  # imported without --attributes: says so, not "an older EmoLens"
        assert "imported without --attributes" in page_text(at)


def test_the_gallery_offers_grad_cam_only_when_the_run_has_maps(imported_env):
    at = open_page("pages/confusion.py")
    toggles = [t for t in at.toggle if t.key == "show_cams"]
    if (imported_env / "runs" / "other-framework" / "cams.npy").exists():
        toggles[0].set_value(True).run()
        assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    else:
        assert not toggles and "no Grad-CAM maps" in page_text(at)
