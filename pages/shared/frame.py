"""The frame every page shares: the demo build when the workspace is empty, and the
sidebar's dataset, run, split and author pickers (Streamlit glue, not a page)."""
from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from emotion_core import runs
from emotion_core.workspace import workspace_dir
from pages.shared.ui import (
    AUTHOR,
    DATASET,
    IMPORTED_BADGE,
    RUN,
    SPLIT,
    available_runs,
    current_run,
    dataset_key,
    metrics,
    sync_query_params,
    warm_up,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def ensure_a_run() -> None:
    """Build the synthetic demo when the workspace holds no evaluated run.

    The build runs in its own process (python -m training.demo), so closing or reloading
    the page does not stop it; every session follows its progress file."""
    if available_runs():
        return
    from training.demo import DEMO_NOTE, demo_building  # imports torch: only when there is a demo to build

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
    labels = {r.name: f"{r.name} (synthetic demo)" if r.is_demo else
              f"{r.name} ({IMPORTED_BADGE})" if r.imported else r.name for r in runs}
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


# (script, title, icon, url path): the dashboard's pages in navigation order; the first is the default.
PAGES = (
    ("pages/overview.py", "Overview", "📊", "overview"),
    ("pages/confusion.py", "Confusion matrix", "🟦", "confusion"),
    ("pages/inspector.py", "Image inspector", "🔎", "inspector"),
    ("pages/trends.py", "Trends", "📈", "trends"),
    ("pages/agreement.py", "Vote agreement", "🗳️", "agreement"),
    ("pages/embedding_map.py", "Embedding map", "🗺️", "embedding-map"),
    ("pages/label_issues.py", "Label issues", "🏷️", "label-issues"),
    ("pages/compare.py", "Compare runs", "⚖️", "compare"),
    ("pages/live.py", "Live prediction", "📤", "live"),
)
# Set by app.py for the page it is about to run, consumed by that page. A page that finds it
# unset was run by Streamlit on its own (its legacy pages-folder mode, which lasts until the
# first st.navigation call of the process: a deep link as a fresh server's first request).
VIA_APP = "_emolens_via_app"


def navigation() -> st.Page:
    """Register the titled navigation and return the page this URL asks for."""
    return st.navigation([st.Page(script, title=title, icon=icon, url_path=url_path, default=index == 0)
                          for index, (script, title, icon, url_path) in enumerate(PAGES)])


def run_app() -> None:
    """What app.py does on every run: page config, titled navigation, the frame, the page."""
    st.set_page_config(page_title="EmoLens", page_icon="🔍", layout="wide")
    page = navigation()  # first: it also ends Streamlit's legacy pages/ folder mode
    setup()
    st.session_state[VIA_APP] = True  # the page then knows its frame is set up
    with error_guard():
        page.run()
    warm_up(current_run())


@contextmanager
def error_guard() -> Iterator[None]:
    """The last guard around a page or a fragment: an unexpected error is one line on the page, its
    traceback in the server log. Streamlit's st.stop / st.rerun are BaseExceptions and pass through."""
    try:
        yield
    except Exception as err:
        logging.getLogger("emolens").exception("page failed")
        st.error(f"This page hit an unexpected error ({type(err).__name__}: {str(err)[:200]}); "
                 "the details are in the server log.")


def fragment(body: Callable) -> Callable:
    """@frame.fragment instead of @st.fragment: a rerun of the fragment alone runs only its function, not
    run_app, so the function carries run_app's error guard itself."""
    @functools.wraps(body)  # the same module and name: Streamlit derives the fragment's identity from them
    def guarded(*args, **kwargs) -> None:
        with error_guard():
            body(*args, **kwargs)
    return st.fragment(guarded)


def setup_if_run_directly() -> None:
    """Pages call this first. A page that Streamlit ran on its own (a deep link that is a
    fresh server's first request, or app.py under AppTest after switch_page) runs the app
    instead, which runs this page again inside the navigation, and stops the direct run. The
    page then has the same layout, navigation, frame and widget identities as on every other
    run, and the widget event that started this run is kept (a rerun would drop it)."""
    if not st.session_state.pop(VIA_APP, False):
        run_app()
        st.stop()
