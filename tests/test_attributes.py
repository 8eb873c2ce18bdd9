import cv2
import matplotlib.cbook
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps

from emotion_core import attributes
from emotion_core.attributes import cam_concentration, colorfulness, compute_attributes, image_attributes


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


def _portrait() -> Image.Image:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:  # shipped with matplotlib
        return Image.open(handle).convert("RGB")


def _photos_without_faces() -> list[Image.Image]:
    from sklearn.datasets import load_sample_image  # two photographs shipped with scikit-learn

    return [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]


def _boxes_with_every_window(gray: np.ndarray, cascade: str) -> np.ndarray:
    """The detector as it was before the smallest windows were skipped: from the
    cascade's 24 px window (or a tenth of the short side) up."""
    side = max(24, min(gray.shape) // 10)
    found = attributes._cascade(cascade).detectMultiScale(gray, scaleFactor=1.2, minNeighbors=4,
                                                           minSize=(side, side))
    return np.asarray(found, dtype=np.int64).reshape(-1, 4)


def test_face_detection_finds_what_the_search_over_every_window_found():
    portrait = _portrait()
    scene = _photos_without_faces()[0].resize((500, 375))
    scene.paste(portrait.resize((180, 211)), (260, 164))  # the face 50 px of 240 analysed, in a photo
    cases = {"portrait": (portrait, 1), "mirrored portrait": (ImageOps.mirror(portrait), 1),
             "portrait in a scene": (scene, 1), "green": (Image.new("RGB", (200, 200), (90, 160, 60)), 0)}
    cases.update({f"photo {k}": (photo, 0) for k, photo in enumerate(_photos_without_faces())})
    for name, (image, faces) in cases.items():
        gray = attributes.face_gray(attributes.analysis_pixels(image))
        for cascade, expected in ((attributes.FACE_CASCADE, faces), (attributes.CAT_FACE_CASCADE, 0)):
            boxes = attributes.face_boxes(gray, cascade)
            np.testing.assert_array_equal(boxes, _boxes_with_every_window(gray, cascade), err_msg=name)
            assert len(boxes) == expected, (name, cascade)
    portrait_gray = attributes.face_gray(attributes.analysis_pixels(portrait))
    assert attributes.face_boxes(portrait_gray, attributes.FACE_CASCADE).tolist() == [[83, 58, 116, 116]]


def test_chroma_percentile_from_the_histogram_is_numpys_percentile():
    rng = np.random.default_rng(0)
    for h, w in [(1, 1), (1, 2), (3, 7), (20, 21), (61, 80)]:
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        rgb[: h // 2, :, 1] = rgb[: h // 2, :, 0]  # ties, as in real images
        expected = np.percentile((rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)) / 255.0, 95)
        assert attributes.chroma_p95(rgb) == expected


def test_cam_concentrations_of_a_batch_equal_one_map_at_a_time():
    cams = np.random.default_rng(0).random((5, 7, 7)) ** 4
    cams[2] = 0.0
    batch = attributes.cam_concentrations(cams)
    for cam, value in zip(cams, batch):
        assert (np.isnan(value) and np.isnan(cam_concentration(cam))) or value == cam_concentration(cam)


def test_threads_give_the_attributes_one_thread_gives(tmp_path):
    """compute_attributes (the Trends page's button) runs images on several threads: they
    must not share a cascade, whose detectMultiScale keeps its image in the object."""
    rng = np.random.default_rng(0)
    paths = []
    for k in range(12):
        pixels = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        paths.append(tmp_path / f"{k}.jpg")
        Image.fromarray(pixels).resize((320, 240), Image.BICUBIC).save(paths[-1])
    paths[3] = tmp_path / "missing.jpg"
    table = pd.DataFrame({"image_id": [f"i{k}" for k in range(12)], "path": [str(p) for p in paths],
                          "cam_index": range(12)})
    cams = rng.random((12, 2, 4, 4)).astype(np.float16)
    one = compute_attributes(table, cams, workers=1)
    assert not one.loc[3, "monochrome"] and np.isnan(one.loc[3, "brightness"])  # unreadable: NaN, no flags
    for _ in range(3):
        pd.testing.assert_frame_equal(compute_attributes(table, cams, workers=4), one)


class _RecordedCams:
    """A run's CAMs (N, 2, h, w) that record how many maps each read takes."""

    def __init__(self, cams: np.ndarray):
        self.cams, self.reads = cams, []

    def __len__(self) -> int:
        return len(self.cams)

    def __getitem__(self, key):
        part = self.cams[key]
        self.reads.append(part.size // (self.cams.shape[2] * self.cams.shape[3]))
        return part


def test_cam_concentration_reads_only_predicted_maps_in_chunks(tmp_path, monkeypatch):
    """compute_attributes for a run evaluated without attributes: cams.npy may be a memory
    map of 100k+ images, of which it reads each prediction's predicted-class map, a chunk
    at a time, never the whole array."""
    rng = np.random.default_rng(2)
    cams = (rng.random((40, 2, 5, 5)) ** 3).astype(np.float16)
    cams[7] = 0.0
    np.save(tmp_path / "cams.npy", cams)
    mapped = np.load(tmp_path / "cams.npy", mmap_mode="r")
    cam_index = rng.permutation(40)[:25]  # a subset of the run's rows, in another order
    table = pd.DataFrame({"image_id": [f"i{k}" for k in range(25)], "path": [str(tmp_path / "missing.jpg")] * 25,
                          "cam_index": cam_index})
    monkeypatch.setattr(attributes, "pixel_row", lambda image: np.zeros(len(attributes.PIXEL_COLUMNS)))
    monkeypatch.setattr(attributes, "CAM_CHUNK", 4)
    recorded = _RecordedCams(mapped)
    result = compute_attributes(table, recorded, workers=1)
    expected = attributes.cam_concentrations(np.asarray(mapped[cam_index][:, 0], dtype=np.float32))
    np.testing.assert_array_equal(result["cam_concentration"].to_numpy(), expected)  # as indexing all at once
    assert recorded.reads and max(recorded.reads) <= 4 and sum(recorded.reads) == 25


def test_fast_face_search_gives_opencvs_boxes():
    """face_boxes skips most windows at scales from 2 up: on portraits, pasted faces, textures
    and a face at the image's edge it must still return what detectMultiScale returns, box for box."""
    portrait, photos = _portrait(), _photos_without_faces()
    rng = np.random.default_rng(4)
    images = [portrait, ImageOps.mirror(portrait), *photos]
    for k in range(6):
        scene = photos[k % 2].resize((500, 375))
        face_side = int(rng.uniform(90, 300))
        scene.paste(portrait.resize((face_side, int(face_side * 1.17))),
                    (int(rng.integers(0, 500 - face_side)), int(rng.integers(0, 60))))
        images.append(scene)
    noise = rng.integers(0, 255, (47, 63, 3), dtype=np.uint8)
    images += [Image.fromarray(noise).resize((500, 375), Image.BICUBIC), Image.fromarray(noise).resize((90, 70))]
    grays = [attributes.face_gray(attributes.analysis_pixels(image)) for image in images]
    # A face whose windows stick out of the bottom edge: OpenCV groups them whole and cuts
    # the box afterwards, [[132, 64, 178, 178]], where cutting first gave a height of 177.
    grays.append(cv2.resize(attributes.face_gray(np.asarray(portrait))[40:326, 0:376], (320, 243)))
    for k, gray in enumerate(grays):
        for cascade in (attributes.FACE_CASCADE, attributes.CAT_FACE_CASCADE):
            np.testing.assert_array_equal(attributes.face_boxes(gray, cascade), _opencv_boxes(gray, cascade),
                                          err_msg=f"image {k}")
    assert attributes.face_boxes(grays[-1], attributes.FACE_CASCADE).tolist() == [[132, 64, 178, 178]]


def _opencv_boxes(gray: np.ndarray, cascade: str) -> np.ndarray:
    side = max(24, round(attributes.FACE_MIN_SHARE * min(gray.shape)))
    found = attributes._cascade(cascade).detectMultiScale(gray, scaleFactor=1.2, minNeighbors=4, minSize=(side, side))
    return np.asarray(found, dtype=np.int64).reshape(-1, 4)


def _noisy_pasted_faces(rng: np.random.Generator) -> np.ndarray:
    """A face_gray image of 1-3 noisy, blurred copies of the portrait's face on blurred noise."""
    face = attributes.face_gray(np.asarray(_portrait()))[60:300, 80:280]
    height, width = 240, 320
    image = cv2.GaussianBlur(np.clip(rng.normal(128, 40, (height, width)), 0, 255).astype(np.uint8), (0, 0), 2)
    for _ in range(rng.integers(1, 4)):
        side = int(rng.uniform(50, 200))
        pasted = cv2.resize(face, (side, int(side * 1.2)))
        pasted = np.clip(pasted + rng.normal(0, rng.uniform(10, 70), pasted.shape), 0, 255).astype(np.uint8)
        pasted = cv2.GaussianBlur(pasted, (0, 0), rng.uniform(0.3, 3))
        y = rng.integers(0, max(1, height - pasted.shape[0] // 2))
        x = rng.integers(0, max(1, width - side // 2))
        bottom, right = min(height, y + pasted.shape[0]), min(width, x + side)
        image[y:bottom, x:right] = pasted[:bottom - y, :right - x]
    return cv2.equalizeHist(image)


def test_fast_face_search_can_miss_a_face_opencv_finds():
    """face_boxes is an approximation: it missed 1 of 600 such images (generated from
    default_rng(7); this is the 581st). All 5 hits of OpenCV's group lie at scales 3.0 and
    3.58 on positions its half-position pass skips. If it finds this face now, the search
    has changed: update the note in attributes.py and README.md."""
    rng = np.random.default_rng(7)
    rng.bit_generator.state = {"bit_generator": "PCG64", "has_uint32": 0, "uinteger": 0,
                               "state": {"state": 171822073494098201411309037035584212487,
                                         "inc": 261136684632268670825940853076396136793}}
    gray = _noisy_pasted_faces(rng)
    assert _opencv_boxes(gray, attributes.FACE_CASCADE).tolist() == [[126, 155, 83, 83]], "another image"
    assert attributes.face_boxes(gray, attributes.FACE_CASCADE).tolist() == []
