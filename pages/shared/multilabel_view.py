"""Streamlit glue for what the predicted distribution says beyond its top class (not a page): the
multi-label view's toggle and threshold (kept in the URL as ?tau=0.20), the sets on gallery cards,
the gallery's distance sort, and the inspector's predicted-beside-voted figure."""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from emotion_core.confusion import SORT_KEYS
from emotion_core.distribution_figure import predicted_vs_voted_figure
from emotion_core.labels import ClassSet
from emotion_core.multilabel import (DEFAULT_THRESHOLD, Coverage, coverage, coverage_sentence, emotion_sets,
                                     gap_sort_key, image_comparison, set_text)
from emotion_core.plots import probability_bars
from emotion_core.runs import RunInfo
from pages.shared import ui

VIEW, THRESHOLD, URL_KEY = "multilabel_view", "multilabel_threshold", "tau"  # widget keys, the URL's
KEPT = "multilabel_tau"  # τ or None, kept across pages (Streamlit drops a widget's state on a page without it)
SET_COLUMN = "emotion_set"  # a gallery row's set as its card shows it
LOWEST, HIGHEST, STEP = 0.05, 0.95, 0.05
SORT = "sort"  # the confusion page's gallery's sort box


def linked_threshold(value: str | None) -> float | None:
    """τ from the URL, rounded to the slider's step; None when absent or not a finite number in the slider's
    range (?tau=inf or 1e400 would overflow the rounding)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    threshold = round(round(number / STEP) * STEP, 2)
    return threshold if LOWEST <= threshold <= HIGHEST else None


def view_controls() -> float | None:
    """The multi-label toggle and, when on, the threshold slider; returns τ (None: the view is off).
    A link with ?tau= opens the view at that threshold; back from another page, the view is as it was."""
    if VIEW not in st.session_state:
        kept = st.session_state.get(KEPT, "unset")
        linked = linked_threshold(st.query_params.get(URL_KEY)) if kept == "unset" else kept
        st.session_state[VIEW] = linked is not None
        if linked is not None:
            st.session_state[THRESHOLD] = linked
    with st.container(horizontal=True, vertical_alignment="center", gap="medium"):
        on = st.toggle("Multi-label view", key=VIEW,
                       help="Each image's set of emotions: every class with predicted p ≥ τ, and always the "
                            "predicted (top) class. An error is covered when its true label is in the set; "
                            "covered errors are counted beside accuracy, which does not change.")
        if on:
            st.session_state.setdefault(THRESHOLD, DEFAULT_THRESHOLD)  # no default argument: state may hold it
            st.slider("Threshold τ on the predicted distribution", LOWEST, HIGHEST, step=STEP, key=THRESHOLD,
                      width=320)
    threshold = float(st.session_state[THRESHOLD]) if on else None
    st.session_state[KEPT] = threshold
    ui.sync_query_params(**{URL_KEY: None if threshold is None else f"{threshold:.2f}"})
    return threshold


def threshold() -> float | None:
    """τ while the multi-label view is on, else None."""
    return st.session_state.get(KEPT)


def with_sets(run: RunInfo, rows: pd.DataFrame) -> pd.DataFrame:
    """Gallery rows with their set ('Anger + Sadness (p ≥ 0.20)') in SET_COLUMN when the view is on."""
    tau = threshold()
    if tau is None or rows.empty:
        return rows
    classes = ui.classes(run)
    return rows.assign(**{SET_COLUMN: [f"{set_text(s, classes)} (p ≥ {tau:.2f})"
                                       for s in emotion_sets(rows, classes, tau)]})


@st.cache_data(show_spinner=False, max_entries=16)
def _split_coverage(run_path: str, mtime: float, split: str | None, threshold: float) -> Coverage:
    return coverage(ui.split_predictions(run_path, mtime, split), ui.classes_of_path(run_path), threshold)


def covered_line(run: RunInfo, rows: pd.DataFrame, true: str, pred: str, threshold: float) -> str:
    """The covered errors of the cell and the split, and the set accuracy beside top-1 accuracy (the
    split's, computed once per run, split and τ: 0.1 s at 118,000 predictions)."""
    classes = ui.classes(run)
    whole = _split_coverage(*ui.predictions_version(run), st.session_state.get(ui.SPLIT), threshold)
    return coverage_sentence(coverage(rows, classes, threshold), whole, true, pred, classes)


@st.cache_data(show_spinner=False, max_entries=8)
def _gap_sort_key(run_path: str, mtime: float, split: str | None) -> str | None:
    return gap_sort_key(ui.split_predictions(run_path, mtime, split))


def sort_keys(run: RunInfo, widget_key: str = SORT) -> tuple[str, ...]:
    """The gallery's sort choices: SORT_KEYS, and the distance sort the run's votes allow (KL to the vote
    distribution, or |p(label) − agree share| on FI). A sort kept (in widget_key, the sort box's key) from
    another run that this run cannot use is dropped, so that the box falls back to its first choice."""
    extra = _gap_sort_key(*ui.predictions_version(run), st.session_state.get(ui.SPLIT))
    keys = SORT_KEYS + ((extra,) if extra else ())
    if st.session_state.get(widget_key) is not None and st.session_state[widget_key] not in keys:
        del st.session_state[widget_key]
    return keys


def predicted_beside_votes(row: pd.Series, probabilities, classes: ClassSet) -> None:
    """The inspector's probabilities: beside the voted distribution (or FI's agree share) with the
    distances in one line when the image has votes, else alone; the image's set when the view is on."""
    compared = image_comparison(row, classes)
    if compared is None:
        st.plotly_chart(probability_bars(probabilities, classes=classes))
    else:
        st.plotly_chart(predicted_vs_voted_figure(compared.predicted, compared.voted, row["label"], classes=classes,
                                                  voted_name=compared.voted_name), key="predicted_vs_voted")
        st.caption(compared.line)
    tau = threshold()
    if tau is not None:
        emotions = emotion_sets(row.to_frame().T, classes, tau).iloc[0]
        st.caption(f"Set at τ = {tau:.2f} (p ≥ τ, always the top class): {set_text(emotions, classes)}")
