"""Streamlit glue shared by the pages: cached loaders, the current run, session keys.

Not a page (st.navigation lists only the pages named in app.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from emotion_core import runs
from emotion_core.attributes import ATTRIBUTES_FILE, read_attributes
from emotion_core.confusion import largest_confusion
from emotion_core.images import ImageLoadError, load_image
from emotion_core.labels import EMOTIONS, display_name
from emotion_core.model import CheckpointError, load_checkpoint
from emotion_core.overlay import ImageCache
from emotion_core.predict import Predictor
from emotion_core.tags import TagStore, TagStoreError, default_url
from emotion_core.trends import discover, image_features
from emotion_core.workspace import runs_dir

RUN, SPLIT, TRUE, PRED, INSPECT, AUTHOR = "run", "split", "selected_true", "selected_pred", "inspect_id", "author"
DATASET = "dataset"
TRUE_BOX, PRED_BOX = "cell_true", "cell_pred"  # widget keys; TRUE / PRED hold the choice across pages


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(show_spinner=False)
def _predictions(run_path: str, mtime: float) -> pd.DataFrame:
    return runs.load_predictions(run_path)


@st.cache_data(show_spinner=False)
def _metrics(run_path: str, mtime: float) -> dict:
    return runs.load_metrics(run_path)


@st.cache_data(show_spinner=False)
def _history(run_path: str, mtime: float) -> pd.DataFrame | None:
    return runs.load_history(run_path)


@st.cache_resource(show_spinner="Loading the model…")
def _predictor(checkpoint: str, mtime: float) -> Predictor:
    model, config, _ = load_checkpoint(checkpoint)
    return Predictor(model, config.input_size)


@st.cache_resource(show_spinner=False)
def _tag_store(url: str) -> TagStore:
    return TagStore(url)


@st.cache_data(show_spinner=False)
def _attributes(run_path: str, mtime: float) -> pd.DataFrame | None:
    return read_attributes(run_path)


@st.cache_data(show_spinner="Testing every confusion…", max_entries=16)
def _discovery(run_path: str, mtimes: tuple[float, float], split: str, tags: pd.DataFrame | None,
               min_images: int) -> pd.DataFrame:
    table = _in_split(_predictions(run_path, mtimes[0]), split)
    attributes = _attributes(run_path, mtimes[1])
    return discover(table, image_features(table, attributes, tags), attributes, min_images=min_images)


def discovery(run: runs.RunInfo, tags: pd.DataFrame | None, min_images: int) -> pd.DataFrame:
    """Trend discovery over every cell, computed once per run, split, tag set and threshold."""
    mtimes = (_mtime(run.path / "predictions.parquet"), _mtime(run.path / ATTRIBUTES_FILE))
    return _discovery(str(run.path), mtimes, st.session_state.get(SPLIT, ""), tags, min_images)


def tag_store() -> TagStore | None:
    """The shared tag store; None (with the reason shown) when the database is unusable."""
    try:
        return _tag_store(default_url())
    except TagStoreError as err:
        st.error(f"{err}. Tags are unavailable; check EMOLENS_DB_URL.")
        return None


def dataset_key(run: runs.RunInfo) -> str:
    """Tags belong to (dataset, image): the dataset is named by its folder."""
    return Path(metrics(run).get("dataset", run.name)).name


def attributes(run: runs.RunInfo) -> pd.DataFrame | None:
    return _attributes(str(run.path), _mtime(run.path / ATTRIBUTES_FILE))


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
    return run


def metrics(run: runs.RunInfo) -> dict:
    return _metrics(str(run.path), _mtime(run.path / "metrics.json"))


def predictions(run: runs.RunInfo) -> pd.DataFrame:
    """The run's predictions for the chosen split."""
    return _in_split(_predictions(str(run.path), _mtime(run.path / "predictions.parquet")),
                     st.session_state.get(SPLIT))


def _in_split(table: pd.DataFrame, split: str | None) -> pd.DataFrame:
    """The rows of one evaluated split (all rows when the split was not evaluated)."""
    return table[table["split"] == split] if split in set(table["split"]) else table


def history(run: runs.RunInfo) -> pd.DataFrame | None:
    return _history(str(run.path), _mtime(run.path / "history.csv"))


def cams(run: runs.RunInfo) -> np.ndarray:
    return runs.load_cams(run.path)


def predictor(run: runs.RunInfo) -> Predictor | None:
    """The run's model, loaded once; None (with a message shown) if it cannot be loaded."""
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


def sync_query_params(**values: str | None) -> None:
    """Keep the URL in step with what is on screen, so a link reopens it."""
    for key, value in values.items():
        if value is None:
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != value:
            st.query_params[key] = value


def ensure_cell(predictions: pd.DataFrame) -> None:
    """First visit: the cell from the URL, else the largest confusion."""
    if TRUE in st.session_state and PRED in st.session_state:
        return
    true, pred = largest_confusion(predictions)
    wanted_true, wanted_pred = st.query_params.get("true"), st.query_params.get("pred")
    st.session_state[TRUE] = wanted_true if wanted_true in EMOTIONS else true
    st.session_state[PRED] = wanted_pred if wanted_pred in EMOTIONS else pred


def _copy_box(box: str, target: str) -> None:
    st.session_state[target] = st.session_state[box]


def cell_pickers(predictions: pd.DataFrame) -> tuple[str, str]:
    """The two select boxes that choose a cell; a chart click sets the same cell."""
    ensure_cell(predictions)
    st.session_state[TRUE_BOX], st.session_state[PRED_BOX] = st.session_state[TRUE], st.session_state[PRED]
    left, right = st.columns(2)
    left.selectbox("True class", EMOTIONS, key=TRUE_BOX, format_func=display_name,
                   on_change=_copy_box, args=(TRUE_BOX, TRUE))
    right.selectbox("Predicted class", EMOTIONS, key=PRED_BOX, format_func=display_name,
                    on_change=_copy_box, args=(PRED_BOX, PRED))
    sync_query_params(true=st.session_state[TRUE], pred=st.session_state[PRED])
    return st.session_state[TRUE], st.session_state[PRED]
