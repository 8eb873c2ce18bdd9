"""Confusion matrix: click a cell (or pick it) to see its images, votes and Grad-CAM."""
import numpy as np
import streamlit as st

from emotion_core.confusion import (MATRIX_VIEWS, SORT_KEYS, cell_from_selection, cell_rows, cell_summary,
                                    filter_and_sort, matrix, page_of, summary_sentence)
from emotion_core.labels import EMOTIONS, display_name
from emotion_core.plots import confusion_figure
from emotion_core.votes import AGREEMENT_LEVELS
from pages import _ui as ui
from pages import _gallery as gallery

PER_PAGE = 12
ui.setup_if_run_directly()
run = ui.require_run()
predictions = ui.predictions(run)
st.title("Confusion matrix")

params = st.query_params
if ui.TRUE not in st.session_state:  # first visit: the cell from the URL, else the largest confusion
    counts = matrix(predictions)
    np.fill_diagonal(counts, -1)
    i, j = np.unravel_index(int(np.argmax(counts)), counts.shape)
    st.session_state[ui.TRUE] = params.get("true") if params.get("true") in EMOTIONS else EMOTIONS[i]
    st.session_state[ui.PRED] = params.get("pred") if params.get("pred") in EMOTIONS else EMOTIONS[j]

view = st.radio("View", MATRIX_VIEWS, horizontal=True, key="matrix_view")
values = matrix(predictions, view)
selected = (st.session_state[ui.TRUE], st.session_state[ui.PRED])
event = st.plotly_chart(confusion_figure(values, matrix(predictions), normalised=view != "counts", selected=selected),
                        on_select="rerun", selection_mode="points", key="matrix_chart")
clicked = cell_from_selection(event)
if clicked and clicked != st.session_state.get("last_click"):
    st.session_state["last_click"] = clicked  # a click is applied once; select boxes may override it later
    st.session_state[ui.TRUE], st.session_state[ui.PRED] = clicked
    st.rerun()

left, right = st.columns(2)
true = left.selectbox("True class", EMOTIONS, key=ui.TRUE, format_func=display_name)
pred = right.selectbox("Predicted class", EMOTIONS, key=ui.PRED, format_func=display_name)
ui.sync_query_params(true=true, pred=pred)

rows = cell_rows(predictions, true, pred)
st.subheader(summary_sentence(true, pred, cell_summary(rows)))
with st.expander("Filter and sort", expanded=False):
    levels = st.multiselect("Vote agreement", AGREEMENT_LEVELS, default=list(AGREEMENT_LEVELS), key="levels")
    confidence = st.slider("Confidence", 0.0, 1.0, (0.0, 1.0), step=0.05, key="confidence")
    sort = st.selectbox("Sort by", SORT_KEYS, key="sort")
show_cams = st.toggle("Show Grad-CAM (predicted | true class)", key="show_cams")
shown = filter_and_sort(rows, levels=levels, confidence=confidence, sort=sort)
st.session_state["cell_image_ids"] = shown["image_id"].tolist()  # the inspector's prev / next
if shown.empty:
    st.info("No images in this cell with these filters.")
else:
    pages = max(1, -(-len(shown) // PER_PAGE))
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"page_{true}_{pred}")
    gallery.grid(run, page_of(shown, int(page), PER_PAGE), show_cams)
