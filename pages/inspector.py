"""Image inspector: one image large, the probability of every class, Grad-CAM for any class, votes."""
import numpy as np
import streamlit as st

from emotion_core.dataset_attributes import describe
from emotion_core.plots import vote_bars
from emotion_core.votes import vote_distribution
from pages.shared import frame, gallery, multilabel_view, neighbours_panel, ui

frame.setup_if_run_directly()
run = ui.require_run()
predictions = ui.predictions(run)
classes = ui.classes(run)
st.title("Image inspector")


def show(image_id: str) -> None:
    """Button callback: inspect another image (the URL follows, so a link reopens it)."""
    st.session_state[ui.INSPECT] = image_id
    st.query_params["image"] = image_id


# Which image: the one a link (a gallery card's Inspect, a shared URL) names; else the last one inspected
# if it is in the selected cell; else the cell's first image in the gallery's order.
ids = gallery.cell_image_ids(run, predictions)
linked, last = st.query_params.get("image"), st.session_state.get(ui.INSPECT)
candidates = [linked, last if last in ids else None, ids[0] if ids else None, last, predictions["image_id"].iloc[0]]
current = next(i for i in candidates if ui.prediction_row_any_split(run, i) is not None)  # a neighbour: any split
if linked is not None and linked != current:  # a link to an image the run did not evaluate: say so, not silently
    every_split = (f"; `{ui.evaluate_command(run)}` evaluates every split"
                   if run.has_model else "")
    st.warning(f"This run did not evaluate image {gallery.escape_markdown(linked)} (the link's ?image=), so it "
               f"shows {gallery.escape_markdown(current)} instead{every_split}")
st.session_state[ui.INSPECT] = current
row = ui.prediction_row_any_split(run, current)
if current in ids:
    position = ids.index(current)
    back, where, forward = st.columns([1, 3, 1])
    back.button("← previous", disabled=position == 0, on_click=show, args=(ids[max(position - 1, 0)],))
    where.caption(f"image {position + 1} of {len(ids)} in the selected cell "
                  f"({classes.display_name(st.session_state[ui.TRUE])} → {classes.display_name(st.session_state[ui.PRED])})")
    forward.button("next →", disabled=position == len(ids) - 1, on_click=show,
                   args=(ids[min(position + 1, len(ids) - 1)],))
ui.sync_query_params(image=current)

probabilities = row[[f"p_{e}" for e in classes.names]].to_numpy(dtype=float)
st.subheader(f"{current}: {classes.display_name(row['label'])} → predicted {classes.display_name(row['pred'])} "
             f"({row['confidence']:.0%})")
st.markdown(gallery.votes_text(row, classes, ui.vote_shares(run)))
st.caption(f"File: `{row['path']}`" + (f" · a {row['split']} image (the sidebar shows {st.session_state[ui.SPLIT]})"
                                       if row["split"] != st.session_state.get(ui.SPLIT) else ""))
dataset_attributes = describe(row)  # the dataset's own (EmoSet's scene, objects, ...; Emotion6's valence, arousal)
if dataset_attributes:
    st.caption(f"Dataset attributes: {gallery.escape_markdown(dataset_attributes)}")
if not run.has_model:
    st.info(ui.NO_MODEL)
image_col, info_col = st.columns([3, 2])
with info_col:
    multilabel_view.predicted_beside_votes(row, probabilities, classes)  # beside the votes where there are any
    distribution = vote_distribution(row)
    if distribution and sum(distribution.values()) > 0:  # LDL, Emotion6: every class's votes
        st.caption("Annotator votes (the label's class in red)")
        st.plotly_chart(vote_bars(distribution, row["label"], classes=classes, shares=ui.vote_shares(run)),
                        key="vote_bars")
    cam_classes = list(classes.names) if run.has_model else ui.stored_cam_classes(run, row)  # no model: stored maps
    target = st.selectbox("Grad-CAM for class", cam_classes, index=cam_classes.index(row["pred"]),
                          format_func=classes.display_name) if cam_classes else None
    if target is None:
        st.caption("This run has no Grad-CAM maps.")
with image_col:
    if target is None:
        cam, cam_key = None, ""
    elif target in (row["pred"], row["label"]):  # stored at evaluation time
        cam = ui.cams(run)[int(row["cam_index"]), 0 if target == row["pred"] else 1].astype(np.float32)
        cam_key = f"{run.name}|{int(row['cam_index'])}|{0 if target == row['pred'] else 1}"
    else:
        predictor, image = ui.predictor(run), ui.load_image_or_none(row["path"])
        cam, cam_key = None, f"{run.name}|{target}"
        if image is None:
            st.warning(f"The image file cannot be read any more: {row['path']}")
        elif predictor is not None:
            with st.spinner("Computing Grad-CAM…"):
                _, cam = predictor.predict_with_cam(image, classes.index[target])
    left, right = st.columns(2)
    with left:
        ui.show_image(ui.thumbnail(run, row["path"]), caption="image")
    with right:
        if cam is not None:
            ui.show_image(ui.cam_overlay(run, row["path"], cam, cam_key), caption=f"Grad-CAM: {classes.display_name(target)}")

neighbours_panel.show(run, image_id=current, own_split=row["split"], given_label=row["label"])
store, dataset = ui.tag_store(), ui.dataset_key(run)
if store:
    st.subheader("Tags")
    gallery.show_tag_message()
    table = store.tags_of(dataset)
    tagged = sorted(table.loc[table["image_id"] == current, "tag"]) if len(table) else []
    for tag in tagged:
        name, remove = st.columns([4, 1])
        name.write(f"🏷 {tag}")
        remove.button("remove", key=f"untag_{tag}", on_click=gallery.act, args=(
            lambda tag=tag: store.remove(dataset, [current], tag, ui.author()), f"removed “{tag}”"))
    choose, add = st.columns([4, 1], vertical_alignment="bottom")
    new_tag = choose.selectbox("Add a tag", [t for t in store.vocabulary() if t not in tagged] + [gallery.NEW_TAG],
                               key="inspector_tag")
    if new_tag == gallery.NEW_TAG:
        choose.text_input("New tag", key="inspector_new_tag", max_chars=60)

    def add_chosen() -> str:
        """Button callback's change: the tag as the boxes hold it when the button is clicked."""
        tag = st.session_state.get("inspector_tag", "")
        tag = st.session_state.get("inspector_new_tag", "") if tag == gallery.NEW_TAG else tag
        store.add(dataset, [current], tag, ui.author())
        return f"tagged “{tag.strip()}”"

    add.button("add", key="inspector_add", on_click=gallery.act, args=(add_chosen, None))
    attributes = ui.attributes_by_id(run)
    row_attributes = attributes.loc[current] if attributes is not None and current in attributes.index else None
    if row_attributes is not None:
        st.caption(gallery.attributes_text(attributes, current))
    from emotion_core.tags import suggestions  # here, not on top: the store has loaded SQLAlchemy

    rejected = {t for i, t in store.rejected(dataset) if i == current}
    for tag in suggestions(row_attributes, tagged, rejected):
        text, yes, no = st.columns([3, 1, 1])
        text.write(f"Suggested: **{tag}** (from the automatic attributes)")
        yes.button("confirm", key=f"confirm_{tag}", on_click=gallery.act, args=(
            lambda tag=tag: store.add(dataset, [current], tag, ui.author(), source="suggestion"), f"tagged “{tag}”"))
        no.button("reject", key=f"reject_{tag}", on_click=gallery.act, args=(
            lambda tag=tag: store.reject(dataset, current, tag, ui.author()) or f"rejected “{tag}”", None))
