"""Grad-CAM overlays and the dashboard's image cache (emotion_core.overlay)."""
import numpy as np
from PIL import Image

from emotion_core.overlay import ImageCache, colourise, overlay
from tests.conftest import save_noise_image


def test_the_overlay_colours_the_upsampled_cam_and_blends_it():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    cam = np.random.default_rng(1).random((7, 7)).astype(np.float16)
    heat = Image.fromarray((np.clip(cam.astype(np.float32), 0, 1) * 255).astype(np.uint8)).resize((80, 60),
                                                                                                  Image.BILINEAR)
    expected = Image.blend(image, Image.fromarray(colourise(np.asarray(heat, dtype=np.float32) / 255.0)), 0.45)
    assert np.array_equal(np.asarray(overlay(image, cam)), np.asarray(expected))
    assert colourise(np.array([0.0, 1.0])).tolist() == [[0, 0, 128], [128, 0, 0]]  # cold blue, hot red


def test_the_cache_keeps_jpeg_thumbnails_and_cam_pairs(tmp_path):
    photo = save_noise_image(tmp_path / "photo.png", size=(500, 375))
    cache = ImageCache(tmp_path / "cache")
    thumb = cache.thumbnail(str(photo))
    with Image.open(thumb) as shown:
        assert shown.format == "JPEG" and shown.size == (224, 168)
    cams = np.stack([np.zeros((14, 14)), np.ones((14, 14))]).astype(np.float16)  # predicted: cold, true: hot
    pair = cache.cam_pair(str(photo), cams, "run|0")
    with Image.open(pair) as both:
        assert both.format == "JPEG" and both.size == (224 * 2 + 6, 168)
        left, right = np.asarray(both.convert("RGB"), dtype=float)[:, :224], np.asarray(both.convert("RGB"),
                                                                                       dtype=float)[:, 230:]
    assert left[..., 2].mean() > left[..., 0].mean() and right[..., 0].mean() > right[..., 2].mean()
    made = pair.stat().st_mtime_ns
    assert cache.cam_pair(str(photo), cams, "run|0") == pair and pair.stat().st_mtime_ns == made  # kept, not remade
    assert cache.cam_pair(str(photo), cams, "run|1") != pair  # another prediction row: its own picture
