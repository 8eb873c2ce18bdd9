"""Confusion matrix: click a cell (or pick it) to see its images, votes and Grad-CAM."""
import pandas as pd
import streamlit as st

from emotion_core.confusion import (
    MATRIX_VIEWS,
    SORT_KEYS,
    cell_from_selection,
    cell_rows,
    cell_summary,
    filter_and_sort,
    matrix,
    page_of,
    summary_sentence,
)
from emotion_core.plots import confusion_figure
from emotion_core.tags import images_with_all, tags_by_image
from pages.shared import frame, gallery, ui

PER_PAGE = 12
frame.setup_if_run_directly()
run = ui.require_run()
predictions = ui.predictions(run)
st.title("Confusion matrix")

ui.ensure_cell(predictions)
if "matrix_view" not in st.session_state and st.query_params.get("matrix") in MATRIX_VIEWS:
    st.session_state["matrix_view"] = st.query_params["matrix"]  # a shared link opens the same view
view = st.radio("View", MATRIX_VIEWS, horizontal=True, key="matrix_view")
ui.sync_query_params(matrix=view)
counts = matrix(predictions)
values = counts if view == "counts" else matrix(predictions, view)
selected = (st.session_state[ui.TRUE], st.session_state[ui.PRED])
event = st.plotly_chart(confusion_figure(values, counts, normalised=view != "counts", selected=selected),
                        on_select="rerun", selection_mode="points", key="matrix_chart")
clicked = cell_from_selection(event)
if clicked is None:
    st.session_state.pop("last_click", None)  # plotly cleared its selection: the next click counts again
elif clicked != st.session_state.get("last_click"):
    st.session_state["last_click"] = clicked  # a click is applied once; select boxes may override it later
    st.session_state[ui.TRUE], st.session_state[ui.PRED] = clicked
    st.rerun()

true, pred = ui.cell_pickers(predictions)

rows = cell_rows(predictions, true, pred)
st.subheader(summary_sentence(true, pred, cell_summary(rows)))
store, dataset = ui.tag_store(), ui.dataset_key(run)
tag_table = store.tags_of(dataset) if store else pd.DataFrame(columns=["image_id", "tag"])
with st.expander("Filter and sort", expanded=False):
    votes = gallery.vote_filter()
    confidence = st.slider("Confidence", 0.0, 1.0, (0.0, 1.0), step=0.05, key="confidence")
    wanted_tags = st.multiselect("Has all these tags", sorted(tag_table["tag"].unique()), key="tag_filter")
    sort = st.selectbox("Sort by", SORT_KEYS, key="sort")
show_cams = st.toggle("Show Grad-CAM (predicted | true class)", key="show_cams")
shown = filter_and_sort(rows, votes=votes, confidence=confidence, sort=sort,
                        only_ids=images_with_all(tag_table, wanted_tags) if wanted_tags else None)
st.session_state["cell_image_ids"] = shown["image_id"].tolist()  # the inspector's prev / next
if shown.empty:
    st.info("No images in this cell with these filters.")
else:
    pages = max(1, -(-len(shown) // PER_PAGE))
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"page_{true}_{pred}")
    on_page = page_of(shown, int(page), PER_PAGE)
    gallery.show_tag_message()
    if store:
        gallery.tag_bar(store, dataset, on_page["image_id"].tolist())
    attributes = ui.attributes(run)
    gallery.grid(run, on_page, show_cams, tags_by_image(tag_table),
                 attributes.set_index("image_id") if attributes is not None else None)
