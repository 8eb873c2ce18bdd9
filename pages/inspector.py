"""Image inspector: one image large, all 8 probabilities, Grad-CAM for any class, votes."""
import numpy as np
import streamlit as st

from emotion_core.labels import EMOTIONS, display_name
from emotion_core.plots import probability_bars
from pages import _gallery as gallery
from pages import _ui as ui

ui.setup_if_run_directly()
run = ui.require_run()
predictions = ui.predictions(run)
st.title("Image inspector")

ids = st.session_state.get("cell_image_ids") or []
current = st.session_state.get(ui.INSPECT) or st.query_params.get("image") or (ids[0] if ids else None)
if current not in set(predictions["image_id"]):
    current = ids[0] if ids else predictions["image_id"].iloc[0]
if current in ids:
    position = ids.index(current)
    back, where, forward = st.columns([1, 3, 1])
    if back.button("← previous", disabled=position == 0):
        st.session_state[ui.INSPECT] = ids[position - 1]
        st.rerun()
    where.caption(f"image {position + 1} of {len(ids)} in the selected cell "
                  f"({display_name(st.session_state.get(ui.TRUE, ''))} → {display_name(st.session_state.get(ui.PRED, ''))})")
    if forward.button("next →", disabled=position == len(ids) - 1):
        st.session_state[ui.INSPECT] = ids[position + 1]
        st.rerun()
ui.sync_query_params(image=current)

row = predictions[predictions["image_id"] == current].iloc[0]
probabilities = row[[f"p_{e}" for e in EMOTIONS]].to_numpy(dtype=float)
st.subheader(f"{current}: {display_name(row['label'])} → predicted {display_name(row['pred'])} "
             f"({row['confidence']:.0%})")
st.write(gallery.votes_text(row))
image_col, info_col = st.columns([3, 2])
with info_col:
    st.plotly_chart(probability_bars(probabilities))
    target = st.selectbox("Grad-CAM for class", EMOTIONS, index=int(row["pred_idx"]), format_func=display_name)
with image_col:
    if target in (row["pred"], row["label"]):  # stored at evaluation time
        cam = ui.cams(run)[int(row["cam_index"]), 0 if target == row["pred"] else 1].astype(np.float32)
    else:
        predictor = ui.predictor(run)
        cam = None
        if predictor is not None:
            with st.spinner("Computing Grad-CAM…"):
                _, cam = predictor.predict_with_cam(ui.load_image_or_none(row["path"]), EMOTIONS.index(target))
    left, right = st.columns(2)
    with left:
        ui.show_image(ui.thumbnail(run, row["path"]), caption="image")
    with right:
        if cam is not None:
            ui.show_image(ui.cam_overlay(run, row["path"], cam, f"{run.name}|{target}"),
                          caption=f"Grad-CAM: {display_name(target)}")
