"""Confusion matrix: click a cell (or pick it) to see its images, votes and Grad-CAM."""
import pandas as pd
import streamlit as st

from emotion_core.confusion import MATRIX_VIEWS, cell_from_selection, cell_summary, summary_sentence
from emotion_core.runs import RunInfo
from pages.shared import frame, gallery, multilabel_view, ui

frame.setup_if_run_directly()
run = ui.require_run()
predictions = ui.predictions(run)
classes = ui.classes(run)
st.title("Confusion matrix")


def apply_click() -> None:
    """Chart callback, before the run: the clicked cell is drawn, picked and shown in that one run.
    Clicking the selected cell again clears plotly's selection (None here): the cell stays."""
    clicked = cell_from_selection(st.session_state.get("matrix_chart"), classes=classes)
    if clicked is not None:
        st.session_state[ui.TRUE], st.session_state[ui.PRED] = clicked


def chart(run: RunInfo, view: str, selected: tuple[str, str]):
    """The matrix figure; for Mikels' eight a toggle orders it by his wheel (built only when asked)."""
    if not classes.is_mikels:
        return ui.confusion_chart(run, view, selected)
    if "wheel_order" not in st.session_state:
        st.session_state["wheel_order"] = st.query_params.get("wheel") == "1"
    wheel = st.toggle("Mikels wheel order", key="wheel_order",
                      help="Rows and columns in the order of Mikels' wheel (Amusement, Contentment, Awe, Excitement, "
                           "Fear, Sadness, Disgust, Anger): near errors sit next to the diagonal; hover a cell for its "
                           "wheel distance and whether it crosses polarity")
    ui.sync_query_params(wheel="1" if wheel else None)
    return ui.confusion_chart(run, view, selected, wheel)


@frame.fragment
def matrix_and_cell(run: RunInfo, predictions: pd.DataFrame) -> None:
    """The matrix, the cell pickers and the cell's gallery: a click on the matrix reruns this part only,
    not the sidebar and the frame around it."""
    ui.ensure_cell(predictions, classes)
    if "matrix_view" not in st.session_state and st.query_params.get("matrix") in MATRIX_VIEWS:
        st.session_state["matrix_view"] = st.query_params["matrix"]  # a shared link opens the same view
    view = st.radio("View", MATRIX_VIEWS, horizontal=True, key="matrix_view")
    ui.sync_query_params(matrix=view)
    selected = (st.session_state[ui.TRUE], st.session_state[ui.PRED])
    st.plotly_chart(chart(run, view, selected), on_select=apply_click, selection_mode="points",
                    key="matrix_chart")
    true, pred = ui.cell_pickers(predictions, classes)
    rows = ui.cell_rows(run, true, pred)
    st.subheader(summary_sentence(true, pred, cell_summary(rows), classes=classes))
    threshold = multilabel_view.view_controls()
    if threshold is not None:  # beside accuracy, never instead of it
        st.caption(multilabel_view.covered_line(run, rows, true, pred, threshold))
    gallery.cell_gallery(run, rows, true, pred)


matrix_and_cell(run, predictions)
