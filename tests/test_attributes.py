import matplotlib.cbook
import numpy as np
import pytest
from PIL import Image

from emotion_core.attributes import cam_concentration, colorfulness, image_attributes


def test_gray_image_is_monochrome_and_not_warm():
    gray = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80), dtype=np.uint8)).convert("RGB")
    values = image_attributes(gray)
    assert values["monochrome"] and not values["warm"]
    assert values["colorfulness"] == pytest.approx(0.0)


def test_saturated_red_is_warm_not_monochrome():
    values = image_attributes(Image.new("RGB", (64, 64), (220, 30, 20)))
    assert values["warm"] and not values["monochrome"]
    blue = image_attributes(Image.new("RGB", (64, 64), (20, 40, 220)))
    assert not blue["warm"]


def test_colorfulness_matches_hasler_susstrunk_by_hand():
    pixels = np.zeros((2, 2, 3), dtype=np.uint8)
    pixels[0, :] = (255, 0, 0)
    pixels[1, :] = (0, 0, 255)
    # rg = [255, 255, 0, 0] -> std 127.5, mean 127.5; yb = [127.5, 127.5, -255, -255] -> std 191.25, mean -63.75
    expected = np.hypot(127.5, 191.25) + 0.3 * np.hypot(127.5, -63.75)
    assert colorfulness(pixels) == pytest.approx(expected)


def test_brightness_and_contrast():
    half = np.zeros((10, 10, 3), dtype=np.uint8)
    half[:, 5:] = 255
    values = image_attributes(Image.fromarray(half))
    assert values["brightness"] == pytest.approx(0.5, abs=0.01)
    assert values["contrast"] == pytest.approx(0.5, abs=0.01)


def test_one_face_in_a_known_portrait():
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:  # shipped with matplotlib
        portrait = Image.open(handle).convert("RGB")
    values = image_attributes(portrait)
    assert values["faces"] == 1 and values["has_face"]
    assert not image_attributes(Image.new("RGB", (200, 200), (90, 160, 60)))["has_face"]


def test_cam_concentration():
    assert cam_concentration(np.ones((10, 10))) == pytest.approx(0.1)
    peaked = np.zeros((10, 10))
    peaked[3, 4] = 1.0
    assert cam_concentration(peaked) == pytest.approx(1.0)
    assert np.isnan(cam_concentration(np.zeros((4, 4))))
