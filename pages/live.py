"""Live prediction: upload an image, see the probability of each of the run's classes, Grad-CAM and the
evaluated images nearest to it."""
import numpy as np
import streamlit as st

from emotion_core.images import DEFAULT_MAX_PIXELS, ImageLoadError, describe_image, load_image
from emotion_core.overlay import overlay
from emotion_core.plots import probability_bars
from pages.shared import frame, neighbours_panel, ui

MAX_UPLOAD_MB = 50
frame.setup_if_run_directly()
run = ui.require_run()
st.title("Live prediction")
if not run.has_model:  # imported predictions: no checkpoint to predict with
    st.info(f"{ui.NO_MODEL} Pick a run with a checkpoint in the sidebar to predict uploaded images.")
    st.stop()
st.caption(f"Model: run **{run.name}**. Uploads stay in memory; nothing is written to disk.")
upload = st.file_uploader("Image", type=["jpg", "jpeg", "png", "gif", "bmp", "webp", "tif", "tiff"],
                          max_upload_size=MAX_UPLOAD_MB)
if upload is None:
    st.stop()
data = upload.getvalue()
if not data:
    st.error("The uploaded file is empty (0 bytes).")
    st.stop()
try:
    image = load_image(data, max_pixels=DEFAULT_MAX_PIXELS)
except ImageLoadError as err:
    st.error(f"Cannot use this file: {str(err).replace('uploaded image: ', '')}")
    st.stop()
facts = describe_image(data)
if facts.get("frames", 1) > 1:
    st.info(f"Animated image with {facts['frames']} frames: the first frame is used.")
if facts.get("mode") not in (None, "RGB", "L", "P", "RGBA"):
    st.info(f"{facts['mode']} image converted to RGB.")

predictor = ui.predictor(run)
if predictor is None:
    st.stop()
classes = predictor.classes  # the checkpoint's own classes, in its output order
live = predictor.predict_live(image, None)  # one trunk pass: probabilities, top-class Grad-CAM, embedding
probabilities, top_cam = live.probabilities, live.cam
top = int(np.argmax(probabilities))
st.subheader(f"Predicted: {classes.display[top]} ({probabilities[top]:.1%})")
left, right = st.columns([3, 2])
with right:
    st.plotly_chart(probability_bars(probabilities, classes=classes))
    chosen = st.selectbox("Grad-CAM for class", classes.names, index=top, format_func=classes.display_name)
with left:
    shown = image.copy()
    shown.thumbnail((512, 512))
    a, b = st.columns(2)
    a.image(overlay(shown, top_cam), caption=f"Grad-CAM: {classes.display[top]} (top class)")
    cam = top_cam if classes.index[chosen] == top else predictor.predict_with_cam(image, classes.index[chosen])[1]
    b.image(overlay(shown, cam), caption=f"Grad-CAM: {classes.display_name(chosen)}")
neighbours_panel.show(run, vector=live.embedding)
