"""Image inspector: one image large, all 8 probabilities, Grad-CAM for any class, votes."""
import numpy as np
import streamlit as st

from emotion_core.labels import EMOTIONS, display_name
from emotion_core.plots import probability_bars
from emotion_core.tags import suggestions
from pages.shared import frame, gallery, ui

frame.setup_if_run_directly()
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
current_id = current

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
        predictor, image = ui.predictor(run), ui.load_image_or_none(row["path"])
        cam = None
        if image is None:
            st.warning(f"The image file cannot be read any more: {row['path']}")
        elif predictor is not None:
            with st.spinner("Computing Grad-CAM…"):
                _, cam = predictor.predict_with_cam(image, EMOTIONS.index(target))
    left, right = st.columns(2)
    with left:
        ui.show_image(ui.thumbnail(run, row["path"]), caption="image")
    with right:
        if cam is not None:
            ui.show_image(ui.cam_overlay(run, row["path"], cam, f"{run.name}|{target}"),
                          caption=f"Grad-CAM: {display_name(target)}")

store, dataset = ui.tag_store(), ui.dataset_key(run)
if store:
    st.subheader("Tags")
    gallery.show_tag_message()
    table = store.tags_of(dataset)
    current = sorted(table.loc[table["image_id"] == current_id, "tag"]) if len(table) else []
    for tag in current:
        name, remove = st.columns([4, 1])
        name.write(f"🏷 {tag}")
        if remove.button("remove", key=f"untag_{tag}"):
            gallery.act(lambda tag=tag: store.remove(dataset, [current_id], tag, ui.author()), f"removed “{tag}”")
    choose, add = st.columns([4, 1], vertical_alignment="bottom")
    new_tag = choose.selectbox("Add a tag", [t for t in store.vocabulary() if t not in current] + [gallery.NEW_TAG],
                               key="inspector_tag")
    if new_tag == gallery.NEW_TAG:
        new_tag = choose.text_input("New tag", key="inspector_new_tag", max_chars=60)
    if add.button("add", key="inspector_add"):
        gallery.act(lambda: store.add(dataset, [current_id], new_tag, ui.author()), f"tagged “{new_tag}”")
    attributes = ui.attributes(run)
    row_attributes = None
    if attributes is not None and current_id in set(attributes["image_id"]):
        row_attributes = attributes.set_index("image_id").loc[current_id]
        st.caption(gallery.attributes_text(attributes.set_index("image_id"), current_id))
    rejected = {t for i, t in store.rejected(dataset) if i == current_id}
    for tag in suggestions(row_attributes, current, rejected):
        text, yes, no = st.columns([3, 1, 1])
        text.write(f"Suggested: **{tag}** (from the automatic attributes)")
        if yes.button("confirm", key=f"confirm_{tag}"):
            gallery.act(lambda tag=tag: store.add(dataset, [current_id], tag, ui.author(), source="suggestion"),
                        f"tagged “{tag}”")
        if no.button("reject", key=f"reject_{tag}"):
            gallery.act(lambda tag=tag: store.reject(dataset, current_id, tag, ui.author()) or f"rejected “{tag}”", None)
