"""Streamlit glue shared by the pages: cached loaders, the current run, session keys.

Not a page (st.navigation lists only the pages named in app.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from emotion_core import runs
from emotion_core.attributes import ATTRIBUTES_FILE, read_attributes
from emotion_core.confusion import largest_confusion
from emotion_core.images import ImageLoadError, load_image
from emotion_core.labels import EMOTIONS, display_name
from emotion_core.model import CheckpointError, load_checkpoint
from emotion_core.overlay import ImageCache
from emotion_core.predict import Predictor
from emotion_core.tags import TagStore, TagStoreError, default_url
from emotion_core.workspace import runs_dir, workspace_dir
from training.demo import DEMO_NOTE, demo_building

RUN, SPLIT, TRUE, PRED, INSPECT, AUTHOR = "run", "split", "selected_true", "selected_pred", "inspect_id", "author"
DATASET = "dataset"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
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
    table = _predictions(str(run.path), _mtime(run.path / "predictions.parquet"))
    split = st.session_state.get(SPLIT)
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


# ---- the app's common frame ---------------------------------------------------------------

def ensure_a_run() -> None:
    """Build the synthetic demo when the workspace holds no evaluated run.

    The build runs in its own process (python -m training.demo), so closing or reloading
    the page does not stop it; every session follows its progress file."""
    if available_runs():
        return
    home = workspace_dir()
    progress_file, log_file = home / ".demo-progress.json", home / ".demo-build.log"
    process = None
    with st.status("Building the built-in demo (synthetic data, about a minute)…", expanded=True) as status:
        st.write(f"Workspace: `{home}`. {DEMO_NOTE}.")
        bar = st.progress(0.0, text="starting")
        if not demo_building():
            home.mkdir(parents=True, exist_ok=True)
            progress_file.unlink(missing_ok=True)
            with open(log_file, "w") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "training.demo", "--reuse", "--progress-file", str(progress_file)],
                    cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**os.environ, "EMOLENS_HOME": str(home)})
        while (process is not None and process.poll() is None) or demo_building():
            state = runs.read_json(progress_file)
            bar.progress(min(max(float(state.get("fraction", 0.0)), 0.0), 1.0), text=state.get("text", "starting"))
            time.sleep(0.5)
        if not available_runs():
            lines = log_file.read_text().strip().splitlines() if log_file.exists() else []
            status.update(label="Building the demo failed", state="error")
            st.error(f"The demo could not be built: {lines[-1] if lines else 'no output'} (log: {log_file})")
            st.stop()
        status.update(label="Demo ready", state="complete", expanded=False)


def run_picker() -> None:
    """Sidebar run and split pickers; the choice lives in plain session keys (which,
    unlike widget keys, survive page switches) and in the URL."""
    every_run = available_runs()
    datasets = sorted({dataset_key(r) for r in every_run})
    if st.session_state.get(DATASET) not in datasets:
        linked = next((r for r in every_run if r.name == st.query_params.get("run")), None) or current_run()
        st.session_state[DATASET] = dataset_key(linked) if linked else datasets[0]
    st.session_state[DATASET] = st.sidebar.selectbox(
        "Dataset", datasets, index=datasets.index(st.session_state[DATASET]), key="dataset_picker",
        help="Runs are listed for the dataset they were evaluated on")
    runs = [r for r in every_run if dataset_key(r) == st.session_state[DATASET]]
    names = [r.name for r in runs]
    if st.session_state.get(RUN) not in names:
        wanted = st.query_params.get("run")
        st.session_state[RUN] = wanted if wanted in names else names[0]
    labels = {r.name: f"{r.name} (synthetic demo)" if r.is_demo else r.name for r in runs}
    st.session_state[RUN] = st.sidebar.selectbox("Run", names, index=names.index(st.session_state[RUN]),
                                                 format_func=labels.get, key="run_picker",
                                                 help="Every evaluated run dir in the workspace")
    splits = list(metrics(current_run()).get("splits", {})) or ["test"]
    if st.session_state.get(SPLIT) not in splits:
        wanted = st.query_params.get("split")
        st.session_state[SPLIT] = wanted if wanted in splits else ("test" if "test" in splits else splits[0])
    st.session_state[SPLIT] = st.sidebar.selectbox("Split", splits, index=splits.index(st.session_state[SPLIT]),
                                                   key="split_picker",
                                                   help="The evaluated split shown on every page")
    sync_query_params(run=st.session_state[RUN], split=st.session_state[SPLIT])
    st.session_state[AUTHOR] = st.sidebar.text_input(
        "Your name (for tags)", value=st.session_state.get(AUTHOR, os.environ.get("USER", "")),
        key="author_input", max_chars=100, help="Every tag records its author and time")


def setup() -> None:
    """What app.py does before any page: the demo if needed, the run and split pickers."""
    ensure_a_run()
    run_picker()


def setup_if_run_directly() -> None:
    """Pages call this first. Streamlit runs a pages/ script on its own (its legacy
    pages-folder mode) for a deep link that arrives before app.py has registered
    st.navigation in this process; then the app's frame must be set up here."""
    if PagesManager.uses_pages_directory:
        setup()


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
