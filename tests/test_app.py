"""AppTest for every page, on the real demo run."""
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ["pages/overview.py", "pages/confusion.py", "pages/inspector.py", "pages/agreement.py", "pages/live.py"]


def start(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_error(demo_env, page):
    at = start(page)
    assert not at.error, [e.value for e in at.error]


def test_overview_shows_the_run_metrics(demo_env):
    metrics = json.loads((demo_env / "runs" / "demo" / "metrics.json").read_text())["splits"]["test"]
    at = start()
    shown = {m.label: m.value for m in at.metric}
    assert shown["Accuracy"] == f"{metrics['accuracy']:.1%}"
    assert shown["Images"] == str(metrics["n_images"])
    table = at.dataframe[0].value
    np.testing.assert_allclose(table["Recall"].iloc[:8].astype(float), [c["recall"] for c in metrics["per_class"]])
    assert "SYNTHETIC" in " ".join(c.value for c in at.caption)


def test_select_boxes_show_exactly_that_cell(demo_env):
    predictions = pd.read_parquet(demo_env / "runs" / "demo" / "predictions.parquet")
    test = predictions[predictions["split"] == "test"]
    at = start("pages/confusion.py")
    at.selectbox(key="cell_true").set_value("anger").run()
    at.selectbox(key="cell_pred").set_value("sadness").run()
    cell = test[(test["label"] == "anger") & (test["pred"] == "sadness")]
    assert at.subheader[0].value.startswith(f"Anger → Sadness: {len(cell)} images")
    shown = {m.value.split("**")[1] for m in at.markdown if m.value.startswith("**")}
    assert shown == set(cell["image_id"])
    assert at.query_params["true"] in ("anger", ["anger"]) and at.query_params["pred"] in ("sadness", ["sadness"])


def png_bytes(image: Image.Image, fmt="PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_live_prediction_shows_probabilities(demo_env):
    at = start("pages/live.py")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    at.file_uploader[0].set_value(("photo.png", png_bytes(image), "image/png")).run()
    assert not at.exception and not at.error
    assert at.subheader[0].value.startswith("Predicted: ")


BAD_UPLOADS = {
    "not an image": (b"%PDF-1.4 hello", "not an image"),
    "zero bytes": (b"", "empty"),
    "truncated": (png_bytes(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")[:200], "truncated"),
    "enormous": (png_bytes(Image.new("1", (12000, 12000))), "over the limit"),
}


@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_uploads_get_one_clear_message(demo_env, case):
    data, expected = BAD_UPLOADS[case]
    at = start("pages/live.py")
    at.file_uploader[0].set_value(("upload.png", data, "image/png")).run()
    assert not at.exception
    assert len(at.error) == 1 and expected in at.error[0].value


@pytest.mark.parametrize("image, fmt, note", [
    (Image.fromarray(np.full((32, 32), 30000, dtype=np.uint16)), "PNG", "converted"),
    (Image.new("CMYK", (32, 32), (0, 100, 100, 0)), "JPEG", "converted"),
])
def test_unusual_but_valid_uploads_work(demo_env, image, fmt, note):
    at = start("pages/live.py")
    at.file_uploader[0].set_value((f"x.{fmt.lower()}", png_bytes(image, fmt), "image/png")).run()
    assert not at.exception and not at.error
    assert any(note in i.value for i in at.info)
    assert at.subheader[0].value.startswith("Predicted: ")


def test_animated_upload_uses_first_frame(demo_env):
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    at = start("pages/live.py")
    at.file_uploader[0].set_value(("anim.gif", data, "image/gif")).run()
    assert any("first frame" in i.value for i in at.info)
    assert at.subheader[0].value.startswith("Predicted: ")
