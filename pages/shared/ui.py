"""Streamlit glue shared by the pages: cached loaders, the current run, session keys.

Not a page (st.navigation lists only the pages named in app.py)."""
from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import streamlit as st

from emotion_core import runs
from emotion_core.attributes import ATTRIBUTES_FILE, read_attributes
from emotion_core.confusion import largest_confusion, matrix
from emotion_core.emotion_metrics import severity_notes, wheel_order
from emotion_core.images import ImageLoadError, load_image
from emotion_core.labels import ClassSet, run_classes
from emotion_core.label_issues import OOF_FILE
from emotion_core.overlay import ImageCache
from emotion_core.plots import confusion_figure
from emotion_core.report import Column, format_table
from emotion_core.targets import trained_on
from emotion_core.workspace import runs_dir, tag_database_url

if TYPE_CHECKING:  # imported where used: torch, scipy and SQLAlchemy cost seconds at a page's first run
    from emotion_core.neighbours import NeighbourIndex
    from emotion_core.predict import Predictor
    from emotion_core.tags import TagStore

RUN, SPLIT, TRUE, PRED, INSPECT, AUTHOR = "run", "split", "selected_true", "selected_pred", "inspect_id", "author"
DATASET = "dataset"
TRUE_BOX, PRED_BOX = "cell_true", "cell_pred"  # widget keys; TRUE / PRED hold the choice across pages
IMPORTED_BADGE = "imported predictions"  # a run made by training.import_predictions: no checkpoint
NO_MODEL = ("This run is imported predictions (no checkpoint): there is no model to run, so nothing is "
            "computed live; the pages show what was imported.")


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


# Tables the pages only read are cached as resources (one object, not a pickled copy per run: 24 MB
# at 118,000 predictions) and handed out as shallow copies: with pandas' copy-on-write a page that
# changed its copy would copy the data first, never the cached table.
@st.cache_resource(show_spinner=False, max_entries=4)
def _predictions(run_path: str, mtime: float) -> pd.DataFrame:
    return runs.load_predictions(run_path)


@st.cache_resource(show_spinner=False, max_entries=8)
def _split_predictions(run_path: str, mtime: float, split: str | None) -> pd.DataFrame:
    return _in_split(_predictions(run_path, mtime), split)


@st.cache_resource(show_spinner=False, max_entries=8)
def _cell_positions(run_path: str, mtime: float, split: str | None) -> dict[tuple[str, str], np.ndarray]:
    """Row positions of every (true, pred) cell, so that showing a cell does not scan every prediction."""
    table = _split_predictions(run_path, mtime, split)
    return {(str(true), str(pred)): positions
            for (true, pred), positions in table.groupby(["label", "pred"], observed=True).indices.items()}


@st.cache_data(show_spinner=False)
def _metrics(run_path: str, mtime: float) -> dict:
    return runs.load_metrics(run_path)


@st.cache_data(show_spinner=False)
def _history(run_path: str, mtime: float) -> pd.DataFrame | None:
    return runs.load_history(run_path)


@st.cache_resource(show_spinner="Loading the model…")
def _predictor(checkpoint: str, mtime: float) -> Predictor:
    from emotion_core.predict import Predictor

    return Predictor.from_checkpoint(checkpoint)


@st.cache_data(show_spinner=False)
def _classes(run_path: str, mtimes: tuple[float, float]) -> ClassSet:
    return run_classes(run_path)


@st.cache_resource(show_spinner=False)
def _tag_store(url: str) -> TagStore:
    from emotion_core.tags import TagStore

    return TagStore(url)


@st.cache_resource(show_spinner=False, max_entries=4)
def _attributes(run_path: str, mtime: float) -> pd.DataFrame | None:
    return read_attributes(run_path)


@st.cache_resource(show_spinner=False, max_entries=4)
def _attributes_by_id(run_path: str, mtime: float) -> pd.DataFrame | None:
    table = _attributes(run_path, mtime)
    return None if table is None else table.drop_duplicates("image_id").set_index("image_id")


@st.cache_data(show_spinner="Testing every confusion…", max_entries=16)
def _discovery(run_path: str, mtimes: tuple[float, float], split: str, tags: pd.DataFrame | None,
               min_images: int) -> pd.DataFrame:
    from emotion_core.trends import discover

    table = _split_predictions(run_path, mtimes[0], split)
    attributes = _attributes(run_path, mtimes[1])
    return discover(table, _trend_features(run_path, mtimes, split, tags), attributes, min_images=min_images)


@st.cache_resource(show_spinner=False, max_entries=8)
def _trend_features(run_path: str, mtimes: tuple[float, float], split: str, tags: pd.DataFrame | None) -> pd.DataFrame:
    from emotion_core.trends import image_features

    return image_features(_split_predictions(run_path, mtimes[0], split), _attributes(run_path, mtimes[1]), tags)


def _trend_mtimes(run: runs.RunInfo) -> tuple[float, float]:
    """(predictions mtime, attributes mtime): the file versions the trend caches are keyed by."""
    return _mtime(run.path / runs.PREDICTIONS_FILE), _mtime(run.path / ATTRIBUTES_FILE)


def trend_features(run: runs.RunInfo, tags: pd.DataFrame | None) -> pd.DataFrame:
    """emotion_core.trends.image_features of the chosen split, made once per run, file versions, split and
    tag set (0.2 s at 118,000 EmoSet predictions, on every rerun of the Trends page otherwise)."""
    return _trend_features(str(run.path), _trend_mtimes(run), st.session_state.get(SPLIT, ""), tags).copy(deep=False)


@st.cache_data(show_spinner=False, max_entries=8)
def _vote_shares(run_path: str, mtime: float) -> bool:
    from emotion_core.votes import holds_shares

    return holds_shares(_predictions(run_path, mtime))


def vote_shares(run: runs.RunInfo) -> bool:
    """Whether the run's vote distributions are shares (Emotion6) rather than counts (LDL), decided once
    for all its predictions (an image with all its probability on one class cannot tell on its own)."""
    return _vote_shares(str(run.path), _mtime(run.path / runs.PREDICTIONS_FILE))


# ---- label issues (emotion_core.label_issues; it imports cleanlab and scipy only when it ranks) ----


@st.cache_resource(show_spinner=False, max_entries=4)
def _out_of_sample(run_path: str, mtimes: tuple[float, float]) -> pd.DataFrame:
    from emotion_core.label_issues import out_of_sample, read_oof

    oof = read_oof(run_path)
    return out_of_sample(_predictions(run_path, mtimes[0]), oof, _train_votes(run_path) if oof is not None else None)


def _train_votes(run_path: str) -> pd.DataFrame | None:
    """The dataset manifest's votes for cross-validated training images (None when it cannot be read: the
    evaluated train rows, if any, give them instead)."""
    dataset = _metrics(run_path, _mtime(Path(run_path) / runs.METRICS_FILE)).get("dataset")
    try:  # the manifest's file itself: emotion_core.dataset would import torch into the page
        return pd.read_parquet(Path(dataset) / "manifest.parquet") if dataset else None
    except (OSError, ValueError):
        return None


@st.cache_resource(show_spinner="Ranking label issues with cleanlab…", max_entries=8)
def _label_issues(run_path: str, mtimes: tuple[float, float], scope: str):
    from emotion_core.label_issues import rank_label_issues, scope_rows

    table = scope_rows(_out_of_sample(run_path, mtimes), scope)
    return rank_label_issues(table, list(_classes_of(run_path).names))


def _label_issue_mtimes(run: runs.RunInfo) -> tuple[float, float]:
    """(predictions mtime, cross-validation file mtime): re-evaluating or cross-validating re-ranks."""
    return _mtime(run.path / runs.PREDICTIONS_FILE), _mtime(run.path / OOF_FILE)


def has_out_of_sample_train(run: runs.RunInfo) -> bool:
    """Whether the run has cross-validated probabilities of its training images (training.crossval)."""
    return (run.path / OOF_FILE).exists()


def label_issue_scopes(run: runs.RunInfo) -> list[str]:
    """What the Label issues page can rank: every split with out-of-sample probabilities, and all of them."""
    from emotion_core.label_issues import scopes

    return scopes(_out_of_sample(str(run.path), _label_issue_mtimes(run)))


def label_issues(run: runs.RunInfo, scope: str):
    """emotion_core.label_issues.Ranking of one scope (a split or all out-of-sample images), ranked once per
    run, file versions and scope; bad input raises the ranking's one-line ValueError (not cached)."""
    return _label_issues(str(run.path), _label_issue_mtimes(run), scope)


def label_issue_neighbours(run: runs.RunInfo, rows: pd.DataFrame, k: int) -> pd.Series | None:
    """For the cards on screen: how many of each image's k nearest evaluated images carry its given label
    (emotion_core.label_issues.agreeing_neighbours, over the shared neighbour_index); None when the run has
    no embeddings. Counted once per run, file versions and cards shown, not on every rerun of the page."""
    versions = (_mtime(run.path / runs.PREDICTIONS_FILE), _mtime(run.path / runs.EMBEDDINGS_FILE))
    counts = _label_issue_neighbours(str(run.path), versions, tuple(rows["image_id"].astype(str)),
                                     tuple(rows["label"].astype(str)), k)
    return None if counts is None else counts.copy()


@st.cache_data(show_spinner=False, max_entries=32)
def _label_issue_neighbours(run_path: str, versions: tuple[float, float], image_ids: tuple[str, ...],
                            labels: tuple[str, ...], k: int) -> pd.Series | None:
    from emotion_core.label_issues import agreeing_neighbours

    index = _neighbour_index(run_path, versions[1])
    if index is None:
        return None
    rows = pd.DataFrame({"image_id": list(image_ids), "label": list(labels)})
    return agreeing_neighbours(rows, _predictions(run_path, versions[0]), index, k=k)


@st.cache_resource(show_spinner=False, max_entries=4)
def _evaluated_ids(run_path: str, mtime: float) -> pd.Index:
    """Every split's image ids in row order (an id listed twice stays twice): positions in _predictions."""
    return pd.Index(_predictions(run_path, mtime)["image_id"].astype(str))


def is_evaluated(run: runs.RunInfo, image_id: str) -> bool:
    """Whether the run evaluated this image in any split (the inspector can show it)."""
    return str(image_id) in _evaluated_ids(*predictions_version(run))


def discovery(run: runs.RunInfo, tags: pd.DataFrame | None, min_images: int) -> pd.DataFrame:
    """Trend discovery over every cell, computed once per run, split, tag set and threshold."""
    return _discovery(str(run.path), _trend_mtimes(run), st.session_state.get(SPLIT, ""), tags, min_images)


def tag_store() -> TagStore | None:
    """The shared tag store; None (with the reason shown) when the database is unusable."""
    from emotion_core.tags import TagStoreError, default_url

    try:
        return _tag_store(default_url())
    except TagStoreError as err:
        st.error(f"{err}. Tags are unavailable; check EMOLENS_DB_URL.")
        return None


def dataset_key(run: runs.RunInfo) -> str:
    """Tags belong to (dataset, image): the dataset is named by its folder."""
    return Path(metrics(run).get("dataset", run.name)).name


@st.cache_data(show_spinner=False, max_entries=64)
def _trained_on(run_path: str, mtime: float) -> str | None:
    return trained_on(run_path)


def training_target(run: runs.RunInfo) -> str | None:
    """'votes (wheel spread)', 'one-hot': what the run trained towards (run.json), read once per file version;
    None for imported runs."""
    return _trained_on(str(run.path), _mtime(run.path / runs.RUN_FILE))


def attributes(run: runs.RunInfo) -> pd.DataFrame | None:
    table = _attributes(str(run.path), _mtime(run.path / ATTRIBUTES_FILE))
    return None if table is None else table.copy(deep=False)


def attributes_by_id(run: runs.RunInfo) -> pd.DataFrame | None:
    """The run's attributes indexed by image_id, None for a run without them."""
    table = _attributes_by_id(str(run.path), _mtime(run.path / ATTRIBUTES_FILE))
    return None if table is None else table.copy(deep=False)


def author() -> str:
    return (st.session_state.get(AUTHOR) or "").strip()


def available_runs() -> list[runs.RunInfo]:
    return [r for r in runs.list_runs(runs_dir()) if r.complete]


def current_run() -> runs.RunInfo | None:
    name = st.session_state.get(RUN)
    return next((r for r in available_runs() if r.name == name), None)


def require_run() -> runs.RunInfo:
    run = current_run()
    if run is None:
        st.info("No evaluated run in the workspace yet. Open the Overview page to build the demo, "
                "or evaluate a run with `python -m training.evaluate`.")
        st.stop()
    if run.is_demo:
        st.caption(f"🧪 {runs.demo_note(run.path)}")
    if run.imported:
        st.badge(IMPORTED_BADGE, icon=":material/input:", color="gray",
                 help="Made from another framework's predictions (training.import_predictions): no model to run")
    return run



def classes(run: runs.RunInfo) -> ClassSet:
    """The run's class set (metrics.json, else its checkpoint), read once per run and change."""
    return _classes_of(str(run.path))


def metrics(run: runs.RunInfo) -> dict:
    return _metrics(str(run.path), _mtime(run.path / runs.METRICS_FILE))


def evaluate_command(run: runs.RunInfo) -> str:
    """The command that evaluates every split of the run (embeddings included), on metrics.json's dataset."""
    from emotion_core.neighbours import evaluate_command as command

    return command(run.path, metrics(run).get("dataset"))


def predictions(run: runs.RunInfo) -> pd.DataFrame:
    """The run's predictions for the chosen split."""
    return _split_predictions(*_predictions_key(run)).copy(deep=False)


def predictions_version(run: runs.RunInfo) -> tuple[str, float]:
    """(run path, its predictions file's mtime): a cache key that changes when the run is re-evaluated."""
    return str(run.path), _mtime(run.path / runs.PREDICTIONS_FILE)


def split_predictions(run_path: str, mtime: float, split: str) -> pd.DataFrame:
    """One split's predictions of the run at run_path (mtime from predictions_version), from the cache
    the other pages share; a shallow copy, so the caller cannot change the cached table."""
    return _split_predictions(run_path, mtime, split).copy(deep=False)


def classes_of_path(run_path: str) -> ClassSet:
    """The class set of the run at run_path (for cached functions keyed by path rather than RunInfo)."""
    return _classes_of(run_path)


def _predictions_key(run: runs.RunInfo) -> tuple[str, float, str | None]:
    return *predictions_version(run), st.session_state.get(SPLIT)


def _in_split(table: pd.DataFrame, split: str | None) -> pd.DataFrame:
    """The rows of one evaluated split (all rows when the split was not evaluated)."""
    in_split = table["split"] == split
    return table[in_split] if in_split.any() else table


@st.cache_resource(show_spinner=False, max_entries=64)
def _confusion_chart(run_path: str, mtime: float, split: str | None, view: str, selected: tuple[str, str],
                     wheel: bool):
    table, classes = _split_predictions(run_path, mtime, split), _classes_of(run_path)
    counts = matrix(table, classes=classes)
    values = counts if view == "counts" else matrix(table, view, classes=classes)
    return confusion_figure(values, counts, normalised=view != "counts", selected=selected, classes=classes,
                            order=wheel_order(classes) if wheel else None,
                            hover_extras=severity_notes(classes) if wheel else None)


def _classes_of(run_path: str) -> ClassSet:
    path = Path(run_path)
    return _classes(run_path, (_mtime(path / runs.METRICS_FILE), _mtime(path / "checkpoint.pt")))


def confusion_chart(run: runs.RunInfo, view: str, selected: tuple[str, str], wheel: bool = False):
    """The matrix figure of the chosen split, made once per view, selected cell and order (st.plotly_chart
    copies it; building it costs more than the rest of a click's run). wheel (Mikels' eight only): rows and
    columns in Mikels' wheel order, each cell's wheel distance and polarity crossing on hover."""
    return _confusion_chart(*_predictions_key(run), view, tuple(selected), wheel)


@st.cache_resource(show_spinner=False, max_entries=8)
def _id_index(run_path: str, mtime: float, split: str | None) -> pd.Index:
    return pd.Index(_split_predictions(run_path, mtime, split)["image_id"])


def prediction_row(run: runs.RunInfo, image_id: str | None) -> pd.Series | None:
    """The chosen split's prediction row of one image (the first if listed twice), None if it has none."""
    index = _id_index(*_predictions_key(run))
    if image_id is None or image_id not in index:
        return None
    position = index.get_indexer_for([image_id])[0]
    return _split_predictions(*_predictions_key(run)).iloc[position]


# The background loads warm_up started in this process, by what they load and from what (run, split, file
# version, database URL). A load that failed stays here too: it is not tried again on every script run,
# only when its inputs change (the page that needs it loads it itself and says what is wrong).
_warmed: set[tuple] = set()


def warm_up(run: runs.RunInfo | None) -> threading.Thread | None:
    """Once a page is drawn, load in the background what the confusion page and the inspector need
    for this run and split (the predictions and their indexes, the attributes, the tag store), so
    that opening them does not wait for it. Everything that depends on the session or the environment
    is read here, in the script's thread; the background thread only calls the cached loaders. Never
    raises, never prints. Returns the thread it started, if any."""
    try:
        loads = _loads_to_warm(run) if run is not None else []
        if not loads:
            return None
        from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

        thread = threading.Thread(target=_load_quietly, args=(loads,), name="emolens-warm-up", daemon=True)
        add_script_run_ctx(thread, get_script_run_ctx())  # the cached loaders expect a session's context
        thread.start()
        return thread
    except Exception as err:  # noqa: BLE001 - a head start, never a reason for the page to fail
        logging.getLogger("emolens").debug("no warm-up: %s", err)
        return None


def _loads_to_warm(run: runs.RunInfo) -> list[tuple[tuple, Callable[[], object]]]:
    """The loads not yet started for these inputs, each as (what and from what, the load), marked started."""
    key = _predictions_key(run)
    attributes_key = (str(run.path), _mtime(run.path / ATTRIBUTES_FILE))
    url = tag_store_url()

    def attributes_index() -> None:  # the hash table of the index too: the first card's lookup builds it
        table = _attributes_by_id(*attributes_key)
        if table is not None:
            "" in table.index  # noqa: B015

    loads = [(("cell positions", *key), lambda: _cell_positions(*key)),
             (("id index", *key), lambda: "" in _id_index(*key)),
             (("attributes", *attributes_key), attributes_index),
             (("tag store", url), lambda: _tag_store(url))]
    new = [(name, load) for name, load in loads if name not in _warmed]
    _warmed.update(name for name, _ in new)
    return new


def _load_quietly(loads: list[tuple[tuple, Callable[[], object]]]) -> None:
    for name, load in loads:
        try:
            load()
        except BaseException as err:  # noqa: BLE001 - a background thread's error would be a traceback on stderr
            logging.getLogger("emolens").debug("warm-up of the %s failed: %s", name[0], err)


def tag_store_url() -> str:
    """emotion_core.tags.default_url, without importing SQLAlchemy into a page's script run."""
    return tag_database_url()


def cell_rows(run: runs.RunInfo, true: str, pred: str) -> pd.DataFrame:
    """The predictions of one cell of the chosen split, in table order (as emotion_core.confusion.cell_rows)."""
    positions = _cell_positions(*_predictions_key(run)).get((true, pred), np.empty(0, dtype=np.int64))
    return predictions(run).iloc[positions]


def history(run: runs.RunInfo) -> pd.DataFrame | None:
    return _history(str(run.path), _mtime(run.path / "history.csv"))


def cams(run: runs.RunInfo) -> np.ndarray:
    return runs.load_cams(run.path)


def has_cams(run: runs.RunInfo) -> bool:
    """An imported run may come without Grad-CAM maps: pages then hide their Grad-CAM parts."""
    return runs.has_cams(run.path)


def stored_cam_classes(run: runs.RunInfo, row: pd.Series) -> list[str]:
    """The classes whose Grad-CAM of this prediction row the run holds (none without maps)."""
    if not has_cams(run):
        return []
    return [row["pred"]] + ([row["label"]] if row["label"] != row["pred"] and has_true_class_cams(run) else [])


def has_true_class_cams(run: runs.RunInfo) -> bool:
    """Whether the maps hold the true class's too (imported predicted-class maps do not)."""
    return has_cams(run) and "true" in metrics(run).get("cam_classes", ["predicted", "true"])


# ---- the embedding map (emotion_core.embedding_map: computed once per run and split, cached in the run dir) ----

def _map_versions(run: runs.RunInfo, split: str) -> tuple[float, float, float]:
    """(embeddings, predictions, the split's map file) mtimes: a re-evaluated run or a new map is read again."""
    from emotion_core.embedding_map import map_path

    return (_mtime(run.path / runs.EMBEDDINGS_FILE), _mtime(run.path / runs.PREDICTIONS_FILE),
            _mtime(map_path(run.path, split)))


@st.cache_resource(show_spinner=False, max_entries=4)
def _map_points(run_path: str, split: str, versions: tuple[float, float, float]) -> pd.DataFrame | None:
    from emotion_core.embedding_map import cached_map, with_predictions

    points = cached_map(run_path, split)
    return None if points is None else with_predictions(points, _split_predictions(run_path, versions[1], split))


@st.cache_resource(show_spinner=False, max_entries=8)
def _map_figure(run_path: str, split: str, versions: tuple[float, float, float], colour_by: str):
    from emotion_core.embedding_map import map_figure

    return map_figure(_map_points(run_path, split, versions), colour_by, _classes_of(run_path))


def embedding_map(run: runs.RunInfo) -> pd.DataFrame:
    """The chosen split's 2-D map joined with its predictions (image_id, cam_index, x, y, label, pred, ...):
    read from the run dir's cache, or computed first with a progress bar (once per run and split).
    Raises emotion_core.embedding_map's one-line ValueError (no embeddings, rows that do not match)."""
    from emotion_core.embedding_map import compute_map

    split = st.session_state.get(SPLIT) or "test"
    points = _map_points(str(run.path), split, _map_versions(run, split))
    if points is not None:
        return points.copy(deep=False)
    with st.status(f"Computing the {split} split's map (once for this run)…", expanded=True) as status:
        bar = st.progress(0.0, text="starting")
        compute_map(run.path, split, progress=lambda fraction, text: bar.progress(min(max(fraction, 0.0), 1.0),
                                                                                   text=text))
        status.update(label="Map ready", state="complete", expanded=False)
    return _map_points(str(run.path), split, _map_versions(run, split)).copy(deep=False)


def embedding_map_figure(run: runs.RunInfo, colour_by: str):
    """The map's figure for one colouring, built once per run, split, file versions and colouring."""
    split = st.session_state.get(SPLIT) or "test"
    return _map_figure(str(run.path), split, _map_versions(run, split), colour_by)


# ---- nearest neighbours (emotion_core.neighbours: numpy only) ----

@st.cache_resource(show_spinner="Indexing the embeddings…", max_entries=2)
def _neighbour_index(run_path: str, mtime: float) -> NeighbourIndex | None:
    from emotion_core.neighbours import NeighbourIndex

    embeddings = runs.load_embeddings(run_path)
    return None if embeddings is None else NeighbourIndex(embeddings)


def neighbour_index(run: runs.RunInfo) -> NeighbourIndex | None:
    """The run's embeddings L2-normalised once (N x d float32), kept per run and embeddings file version;
    None when the run has none. Bad embeddings raise NeighbourIndex's one-line ValueError (not cached)."""
    return _neighbour_index(str(run.path), _mtime(run.path / runs.EMBEDDINGS_FILE))


def all_predictions(run: runs.RunInfo) -> pd.DataFrame:
    """Every evaluated split's predictions (neighbours come from any of them); a shallow copy of the cache."""
    return _predictions(*predictions_version(run)).copy(deep=False)


def prediction_row_any_split(run: runs.RunInfo, image_id: str | None) -> pd.Series | None:
    """The image's row in the chosen split, else in another evaluated split (a neighbour from train, say)."""
    row = prediction_row(run, image_id)
    if row is not None or image_id is None:
        return row
    version = predictions_version(run)
    index = _evaluated_ids(*version)  # cached: the inspector asks up to six times a rerun
    if image_id not in index:
        return None
    return _predictions(*version).iloc[index.get_indexer_for([image_id])[0]]


def predictor(run: runs.RunInfo) -> Predictor | None:
    """The run's model, loaded once; None (with a message shown) if it cannot be loaded or the run
    has none (imported predictions)."""
    from emotion_core.model import CheckpointError

    if not run.has_model:
        st.info(NO_MODEL)
        return None
    checkpoint = run.path / "checkpoint.pt"
    try:
        return _predictor(str(checkpoint), _mtime(checkpoint))
    except CheckpointError as err:
        st.error(str(err))
        return None


def image_cache(run: runs.RunInfo) -> ImageCache:
    return ImageCache(run.path / "cache")


def show_image(path_or_none, caption: str = "", width: str | int = "stretch") -> None:
    if path_or_none is None:
        st.warning(f"image unavailable {caption}")
    else:
        st.image(str(path_or_none), caption=caption, width=width)


def show_jpeg(path_or_none: Path | None, caption: str = "") -> None:
    """A small JPEG from the image cache, sent inside the page's message as a data URL: no media file
    for the server to register and serve, no request per image for the browser."""
    if path_or_none is None:
        st.warning(f"image unavailable {caption}")
    else:
        st.image(f"data:image/jpeg;base64,{base64.b64encode(Path(path_or_none).read_bytes()).decode()}",
                 caption=caption, width="stretch")


def load_image_or_none(path: str):
    try:
        return load_image(path)
    except ImageLoadError:
        return None


def thumbnail(run: runs.RunInfo, image_path: str):
    try:
        return image_cache(run).thumbnail(image_path)
    except ImageLoadError:
        return None


def cam_overlay(run: runs.RunInfo, image_path: str, cam: np.ndarray, key: str):
    try:
        return image_cache(run).cam_overlay(image_path, cam, key)
    except ImageLoadError:
        return None


def cam_pair(run: runs.RunInfo, image_path: str, cams: np.ndarray, key: str):
    try:
        return image_cache(run).cam_pair(image_path, cams, key)
    except ImageLoadError:
        return None


def show_table(table: pd.DataFrame, columns: dict[str, Column]) -> None:
    """A table for people (emotion_core.report.format_table), numbers aligned right."""
    st.dataframe(format_table(table, columns), hide_index=True,
                 column_config={column.header: st.column_config.Column(alignment="right")
                                for column in columns.values() if column.kind != "text"})


def sync_query_params(**values: str | None) -> None:
    """Keep the URL in step with what is on screen, so a link reopens it."""
    for key, value in values.items():
        if value is None:
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != value:
            st.query_params[key] = value


def ensure_cell(predictions: pd.DataFrame, classes: ClassSet) -> None:
    """First visit (or a cell the run's classes lack, after switching runs): the cell from the URL,
    else the largest confusion."""
    if st.session_state.get(TRUE) in classes and st.session_state.get(PRED) in classes:
        return
    true, pred = largest_confusion(predictions, classes=classes)
    wanted_true, wanted_pred = st.query_params.get("true"), st.query_params.get("pred")
    st.session_state[TRUE] = wanted_true if wanted_true in classes else true
    st.session_state[PRED] = wanted_pred if wanted_pred in classes else pred


def _copy_box(box: str, target: str) -> None:
    st.session_state[target] = st.session_state[box]


def cell_pickers(predictions: pd.DataFrame, classes: ClassSet) -> tuple[str, str]:
    """The two select boxes that choose a cell; a chart click sets the same cell."""
    ensure_cell(predictions, classes)
    st.session_state[TRUE_BOX], st.session_state[PRED_BOX] = st.session_state[TRUE], st.session_state[PRED]
    left, right = st.columns(2)
    left.selectbox("True class", classes.names, key=TRUE_BOX, format_func=classes.display_name,
                   on_change=_copy_box, args=(TRUE_BOX, TRUE))
    right.selectbox("Predicted class", classes.names, key=PRED_BOX, format_func=classes.display_name,
                    on_change=_copy_box, args=(PRED_BOX, PRED))
    sync_query_params(true=st.session_state[TRUE], pred=st.session_state[PRED])
    return st.session_state[TRUE], st.session_state[PRED]
