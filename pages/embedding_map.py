"""Embedding map: the chosen split's images in 2-D by what the model sees in them; a box or lasso selection
shows the selected images in the confusion page's gallery."""
import hashlib

import streamlit as st

from emotion_core.embedding_map import COLOUR_BY, image_ids_from_selection, method_description, selection_summary
from emotion_core.neighbours import missing_embeddings_message
from emotion_core.runs import EMBEDDINGS_FILE
from pages.shared import frame, gallery, ui

CHART, SELECTION = "map_chart", "map_selection"  # the chart's widget key; the last selection (a plain key)

frame.setup_if_run_directly()
run = ui.require_run()
classes = ui.classes(run)
st.title("Embedding map")


def keep_selection() -> None:
    """Chart callback: keep the selection in a plain key (a widget's own state cannot be set, so tests and
    links set this one). A double click on the map clears plotly's selection, and so the gallery."""
    st.session_state[SELECTION] = st.session_state.get(CHART)


if not (run.path / EMBEDDINGS_FILE).exists():
    st.info(missing_embeddings_message(run.path, what="map"))
    st.stop()
try:
    points = ui.embedding_map(run)
except ValueError as err:  # embeddings that do not match the predictions, a split without predictions
    st.error(f"No map for this split: {err}")
    st.stop()
split = st.session_state.get(ui.SPLIT) or "test"  # as ui.embedding_map chose it
st.caption(f"{len(points):,} {split} images placed by their embeddings (the pooled features that enter the head; "
           f"{method_description(len(points))}): near points look alike to the model. Drag a box or a lasso to "
           "see the images below; double-click the map to clear.")
colour_by = st.radio("Colour by", COLOUR_BY, horizontal=True, key="map_colour")
st.plotly_chart(ui.embedding_map_figure(run, colour_by), on_select=keep_selection, selection_mode=("box", "lasso"),
                key=CHART, config={"scrollZoom": True})

selected = image_ids_from_selection(st.session_state.get(SELECTION))
rows = ui.predictions(run)
rows = rows[rows["image_id"].isin(selected)]
if rows.empty:
    st.info("No images selected: drag a box or a lasso over some points of the map.")
    st.stop()
st.subheader(selection_summary(rows, classes))
digest = hashlib.sha1("\n".join(sorted(rows["image_id"].astype(str))).encode()).hexdigest()[:12]
gallery.selection_gallery(run, rows, "map_", f"map_page_{digest}")
