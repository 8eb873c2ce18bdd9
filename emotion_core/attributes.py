"""Automatic image attributes, computed once per image at evaluation time.

monochrome (low chroma), red/warm tones, brightness, colourfulness (Hasler and
Süsstrunk 2003), contrast, human and cat faces (OpenCV Haar cascades), and how
concentrated the Grad-CAM is. Boolean attributes become suggested tags.

Evaluation computes the pixel attributes in its DataLoader workers from the image they
decode anyway (emotion_core.dataset.ImageDataset with attributes=True), one float row
per image in PIXEL_COLUMNS order, and adds cam_concentration from the CAMs afterwards;
`compute_attributes` does the same per image for a run evaluated without them.
"""
from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from emotion_core.fileio import write_parquet
from emotion_core.images import ImageLoadError, load_image

ATTRIBUTES_FILE = "attributes.parquet"
ANALYSIS_SIDE = 320          # images are analysed at most this large: enough for faces and colour
MONOCHROME_CHROMA = 0.06     # 95th percentile of per-pixel chroma below this: black & white
WARM_SHARE = 0.35            # share of strongly red/orange pixels above this: red/warm tones
# Smallest face looked for, as a share of the analysed image's short side. The windows
# below it (from 24 px = 10% of 240 up) cost a third of the detection time and found few
# faces: without them bench/attributes_throughput.py's face photos get another answer 1-2
# times in 100, every time a face under 15% of the short side (mostly missed either way).
FACE_MIN_SHARE = 0.135
FACE_CASCADE, CAT_FACE_CASCADE = "haarcascade_frontalface_default.xml", "haarcascade_frontalcatface.xml"
# boolean attribute -> the tag it suggests
SUGGESTED_TAGS = {"monochrome": "monochrome", "warm": "red/warm tones", "has_face": "human face",
                  "has_cat_face": "non-human face"}
BOOLEAN_ATTRIBUTES = tuple(SUGGESTED_TAGS)
CONTINUOUS_ATTRIBUTES = ("brightness", "colorfulness", "contrast", "cam_concentration")
COUNT_ATTRIBUTES = ("faces", "cat_faces")
# What an image's pixels give, in the order of the row a DataLoader worker hands back.
PIXEL_COLUMNS = ("chroma_p95", "monochrome", "warm_share", "warm", "brightness", "colorfulness", "contrast",
                 "faces", "has_face", "cat_faces", "has_cat_face")
Progress = Callable[[float, str], None]

# Attributes run in parallel over images (evaluation's loader workers, or the threads of
# compute_attributes), so OpenCV's own thread pool would only compete with them; and once
# that pool has started, a process forked from this one (a DataLoader worker) hangs in its
# first OpenCV call. With one thread OpenCV never starts the pool.
cv2.setNumThreads(1)


def chroma_p95(rgb: np.ndarray) -> float:
    """95th percentile of per-pixel chroma, (max - min) / 255 over R, G, B.

    Equal to np.percentile(chroma, 95) (linear interpolation), read from the 256-bin
    histogram instead of sorting every pixel."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    chroma = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)  # uint8, no wrap: max >= min
    cumulative = np.cumsum(np.bincount(chroma.ravel(), minlength=256))
    position = (chroma.size - 1) * 0.95
    below = math.floor(position)
    low, high = (np.searchsorted(cumulative, rank, side="right") / 255.0
                 for rank in (below, min(below + 1, chroma.size - 1)))
    weight = position - below
    # np.percentile's interpolation, term for term, so the value is the same to the last bit
    return float(low + (high - low) * weight if weight < 0.5 else high - (high - low) * (1 - weight))


def warm_share(rgb: np.ndarray) -> float:
    """Share of pixels that are saturated reds and oranges (hue within 40 degrees of red)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # OpenCV hue is 0..180
    hue, saturation, value = hsv[..., 0], hsv[..., 1] / 255.0, hsv[..., 2] / 255.0
    warm = ((hue <= 20) | (hue >= 170)) & (saturation >= 0.35) & (value >= 0.2)
    return float(warm.mean())


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler and Süsstrunk's M3: sigma_rgyb + 0.3 * mu_rgyb, in 0..255 units."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def luma(rgb: np.ndarray) -> np.ndarray:
    return (rgb @ np.array([0.299, 0.587, 0.114])) / 255.0


def cam_concentrations(cams: np.ndarray) -> np.ndarray:
    """Per map of cams (N, h, w): the share of saliency mass in the map's top 10% of
    cells (0.1 = spread evenly); NaN for an all-zero map."""
    values = np.asarray(cams, dtype=np.float64).reshape(len(cams), -1)
    top = max(1, math.ceil(0.1 * values.shape[1]))
    descending = -np.sort(-values, axis=1)
    total = descending.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, descending[:, :top].sum(axis=1) / total, np.nan)


def cam_concentration(cam: np.ndarray) -> float:
    """cam_concentrations for one map (h, w)."""
    return float(cam_concentrations(np.asarray(cam)[None])[0])


_per_thread = threading.local()


def _cascade(name: str) -> cv2.CascadeClassifier:
    """One classifier per thread: detectMultiScale keeps the image it works on in the
    classifier, so two threads sharing one fail (an OpenCV assertion) or mix images."""
    cascades = _per_thread.__dict__.setdefault("cascades", {})
    if name not in cascades:
        cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name))
        if cascade.empty():
            raise RuntimeError(f"OpenCV Haar cascade {name} not found (install opencv-python-headless<5)")
        cascades[name] = cascade
    return cascades[name]


def face_gray(rgb: np.ndarray) -> np.ndarray:
    """The equalised grayscale image the cascades look at."""
    return cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def face_boxes(gray: np.ndarray, cascade: str) -> np.ndarray:
    """(n, 4) boxes x, y, w, h that `cascade` finds in a face_gray image: an approximation of
    detectMultiScale(gray, scaleFactor=1.2, minNeighbors=4, minSize=(side, side)) found with
    about 70% of its work on photos (_window_hits). Where it finds a face it gives OpenCV's
    box, in its order; it can miss a face OpenCV finds (see _window_hits)."""
    side = max(HAAR_WINDOW, round(FACE_MIN_SHARE * min(gray.shape)))  # 24: the cascades' own window
    hits = _window_hits(_cascade(cascade), gray, side)
    if not hits:
        return np.zeros((0, 4), dtype=np.int64)
    grouped, _ = cv2.groupRectangles(hits, HAAR_NEIGHBOURS, HAAR_GROUP_EPS)  # what detectMultiScale ends with
    return _clipped(np.asarray(grouped, dtype=np.int64).reshape(-1, 4), gray.shape)


def _clipped(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boxes cut to the image, empty ones dropped: detectMultiScale groups its hits as the
    windows were (partly outside the image) and only then cuts each box (win0 & r)."""
    height, width = shape
    corners = np.stack([boxes[:, 0].clip(0), boxes[:, 1].clip(0),
                        (boxes[:, 0] + boxes[:, 2]).clip(max=width), (boxes[:, 1] + boxes[:, 3]).clip(max=height)], 1)
    corners = corners[(corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])]
    return np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)


# How OpenCV's detectMultiScale searches (objdetect/cascadedetect.cpp, 4.x, one thread): at
# each scale 1.2**k it shrinks the image (INTER_LINEAR_EXACT) and runs the cascade's 24 px
# window over it, every 2nd position while the scale is below 2 and every position from 2
# up, stepping over one more position after a window rejected by the first stage; the
# windows that pass every stage ("hits") are grouped (groupRectangles, 5 or more similar
# hits make a box) before each box is cut to the image. Two thirds of the time goes to the
# scales from 2 up, nearly all of it to windows without a face. _window_hits gets nearly the
# same hits with less of that: the scales below 2 in one OpenCV call; at each scale from 2
# up, a pass over half the positions (_Level.checkerboard) shows where the cascade fires, and
# only the rows whose windows may be grouped with a hit are searched as OpenCV does
# (_Level.rows), again around every hit they add. So it is an approximation: a group is
# missed when none of its 5+ hits is on the checkerboard or close to another scale's hit. On
# the test images and bench/attributes_throughput.py's 500+ images every box is OpenCV's; on
# 600 hard synthetic images (noisy, blurred faces pasted on noise) it missed 1 face of
# OpenCV's (tests/test_attributes.py::test_fast_face_search_can_miss_a_face_opencv_finds).
HAAR_WINDOW, HAAR_SCALE_STEP, HAAR_NEIGHBOURS, HAAR_GROUP_EPS = 24, 1.2, 4, 0.2


def _hit_positions(cascade: cv2.CascadeClassifier, image: np.ndarray, scale_step: float, side: int) -> np.ndarray:
    """(n, 2) window positions x, y (in `image`) of OpenCV's hits at the one scale whose window is `side`."""
    found = cascade.detectMultiScale(image, scale_step, 0, minSize=(side, side), maxSize=(side, side))
    return np.asarray(found, dtype=np.int64).reshape(-1, 4)[:, :2]


class _Level:
    """One scale from 2 up: the shrunk image exactly as OpenCV makes it, and its windows."""

    def __init__(self, gray: np.ndarray, scale: np.float32):
        height, width = gray.shape
        self.scale = scale  # OpenCV keeps scales as float32 and computes sizes and boxes with them
        size = (int(np.rint(np.float32(width) / scale)), int(np.rint(np.float32(height) / scale)))
        self.image = cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR_EXACT)
        self.last_x, self.last_y = size[0] - HAAR_WINDOW, size[1] - HAAR_WINDOW  # last window position
        self.side = int(np.rint(np.float32(HAAR_WINDOW) * scale))
        self.searched = np.zeros(max(self.last_y + 1, 0), dtype=bool)  # rows searched as OpenCV does

    def hits(self, positions: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Boxes in the analysed image, (x, y, side, side), of window positions at this scale."""
        corners = np.rint(positions.astype(np.float32) * self.scale).astype(np.int64)
        return [(int(x), int(y), self.side, self.side) for x, y in corners]

    def checkerboard(self, cascade: cv2.CascadeClassifier) -> list[tuple]:
        """Hits among every 2nd position of every 2nd row and of the image shifted by one pixel
        diagonally (OpenCV at scale 1 steps by 2): found cheaply, not all of them OpenCV's."""
        shifted = np.ascontiguousarray(self.image[1:, 1:])
        return self.hits(np.concatenate([_hit_positions(cascade, self.image, HAAR_SCALE_STEP, HAAR_WINDOW),
                                         _hit_positions(cascade, shifted, HAAR_SCALE_STEP, HAAR_WINDOW) + 1]))

    def rows(self, cascade: cv2.CascadeClassifier, first: int, last: int) -> list[tuple]:
        """OpenCV's hits in window rows first..last, searched as OpenCV does at this scale: it
        steps by one position only from scale 2, so the band goes in doubled, which OpenCV at
        its scale 2 halves back exactly (each output pixel the mean of 4 equal ones)."""
        band = self.image[first:last + HAAR_WINDOW]
        doubled = np.repeat(np.repeat(band, 2, axis=0), 2, axis=1)
        self.searched[first:last + 1] = True
        return self.hits(_hit_positions(cascade, doubled, 2.0, 2 * HAAR_WINDOW) // 2 + (0, first))

    def rows_near(self, box: tuple) -> tuple[int, int] | None:
        """Window rows of this scale that may hold a window groupRectangles finds similar to
        `box` (each side within eps times the mean of the smaller width and height), with a
        row to spare each way; None if the sizes are too different."""
        x, y, width, height = box
        delta = HAAR_GROUP_EPS * (min(width, self.side) + min(height, self.side)) * 0.5
        if abs(width - self.side) > 2 * delta or abs(height - self.side) > 2 * delta:
            return None
        top, bottom = max(y - delta, y + height - self.side - delta), min(y + delta, y + height - self.side + delta)
        first = max(0, math.floor(top / float(self.scale)) - 1)
        last = min(self.last_y, math.ceil(bottom / float(self.scale)) + 1)
        return (first, last) if first <= last else None


def _haar_scales(shape: tuple[int, int], min_side: int) -> list[np.float32]:
    """The scales detectMultiScale searches: 1.2**k while the window fits, from min_side up."""
    scales, factor = [], 1.0
    while round(HAAR_WINDOW * factor) <= min(shape):
        if round(HAAR_WINDOW * factor) >= min_side:
            scales.append(np.float32(factor))
        factor *= HAAR_SCALE_STEP
    return scales


def _window_hits(cascade: cv2.CascadeClassifier, gray: np.ndarray, min_side: int) -> list[list[int]]:
    """OpenCV's hits (see above), in its order (scale, then row, then column), as whole
    windows: not yet cut to the image, since detectMultiScale groups them uncut."""
    scales = _haar_scales(gray.shape, min_side)
    below_two = [scale for scale in scales if scale < 2]
    first_hits = []  # OpenCV's own, already in its order
    if below_two:
        largest = round(HAAR_WINDOW * float(below_two[-1]))
        found = cascade.detectMultiScale(gray, HAAR_SCALE_STEP, 0, minSize=(min_side, min_side),
                                         maxSize=(largest, largest))
        first_hits = _uncut(np.asarray(found, dtype=np.int64).reshape(-1, 4), below_two)
    levels = [_Level(gray, scale) for scale in scales if scale >= 2]
    levels = [level for level in levels if level.last_x >= 0 and level.last_y >= 0]
    hits = set()  # at the levels: each (x, y, side, side)
    around = set(map(tuple, first_hits)).union(*(level.checkerboard(cascade) for level in levels))
    while around:
        added = set()
        for level in levels:
            rows = np.zeros_like(level.searched)
            for first, last in filter(None, map(level.rows_near, around)):
                rows[first:last + 1] = True
            rows = np.flatnonzero(rows & ~level.searched)
            if len(rows):
                gaps = np.flatnonzero(np.diff(rows) > 1)
                for first, last in zip(rows[np.r_[0, gaps + 1]], rows[np.r_[gaps, len(rows) - 1]]):
                    added.update(level.rows(cascade, int(first), int(last)))
        around = added - hits
        hits |= added
    return first_hits + [list(box) for box in sorted(hits, key=lambda box: (box[2], box[1], box[0]))]


def _uncut(found: np.ndarray, scales: list[np.float32]) -> list[list[int]]:
    """detectMultiScale's ungrouped hits (minNeighbors=0) as whole windows: it returns them cut
    to the image, which only shortens a side by the pixel or two a window's rounded corner
    sticks out, so the window's side is the smallest of the scales' sides that is as long."""
    sides = sorted(int(np.rint(np.float32(HAAR_WINDOW) * scale)) for scale in scales)
    return [[x, y, side, side] for x, y, width, height in found.tolist()
            for side in [min((s for s in sides if s >= max(width, height)), default=max(width, height))]]


def count_faces(rgb: np.ndarray, cascade: str) -> int:
    return len(face_boxes(face_gray(rgb), cascade))


def analysis_pixels(image: Image.Image) -> np.ndarray:
    """(h, w, 3) uint8 RGB, at most ANALYSIS_SIDE on the long side."""
    image = image.convert("RGB")  # a copy: thumbnail works in place
    image.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE))
    return np.ascontiguousarray(np.asarray(image))


def pixel_attributes(image: Image.Image) -> dict:
    """Every attribute an image's pixels give (all but cam_concentration)."""
    rgb = analysis_pixels(image)
    brightness = luma(rgb.astype(np.float64))
    chroma, warm = chroma_p95(rgb), warm_share(rgb)
    gray = face_gray(rgb)
    faces, cat_faces = len(face_boxes(gray, FACE_CASCADE)), len(face_boxes(gray, CAT_FACE_CASCADE))
    return {"chroma_p95": chroma, "monochrome": chroma < MONOCHROME_CHROMA, "warm_share": warm,
            "warm": warm > WARM_SHARE, "brightness": float(brightness.mean()), "colorfulness": colorfulness(rgb),
            "contrast": float(brightness.std()), "faces": faces, "has_face": faces > 0,
            "cat_faces": cat_faces, "has_cat_face": cat_faces > 0}


def image_attributes(image: Image.Image, cam: np.ndarray | None = None) -> dict:
    """All attributes of one image; cam_concentration is NaN without its CAM."""
    return {**pixel_attributes(image),
            "cam_concentration": cam_concentration(cam) if cam is not None else float("nan")}


def pixel_row(image: Image.Image | None) -> np.ndarray:
    """pixel_attributes as floats in PIXEL_COLUMNS order (what a loader worker returns);
    all NaN for an image that could not be loaded (None)."""
    if image is None:
        return np.full(len(PIXEL_COLUMNS), np.nan)
    values = pixel_attributes(image)
    return np.array([float(values[column]) for column in PIXEL_COLUMNS])


def attributes_table(image_ids: Sequence[str], pixel_rows: np.ndarray, cams: np.ndarray | None,
                     cam_index: np.ndarray | None = None) -> pd.DataFrame:
    """The attributes file's table from pixel rows (N, len(PIXEL_COLUMNS)) and the CAMs
    (N, 2, h, w) of the same images, or, with cam_index (N,), the CAMs of a whole run and
    each image's row in them (None: no cam_concentration). An all-NaN row (an unreadable
    image) gets False flags, no face counts and NaN elsewhere."""
    pixel_rows = np.asarray(pixel_rows, dtype=np.float64).reshape(len(image_ids), len(PIXEL_COLUMNS))
    table = pd.DataFrame(pixel_rows, columns=list(PIXEL_COLUMNS))
    table.insert(0, "image_id", pd.Series(list(image_ids), dtype=str))  # str also when empty
    for column in BOOLEAN_ATTRIBUTES:
        table[column] = table[column].fillna(0.0).astype(bool)
    for column in COUNT_ATTRIBUTES:
        table[column] = table[column].round().astype("Int64")
    readable = ~np.isnan(pixel_rows).all(axis=1)
    concentration = np.full(len(table), np.nan)
    if cams is not None and len(table):
        concentration = np.where(readable, _predicted_class_concentrations(cams, cam_index), np.nan)
    table["cam_concentration"] = concentration
    return table


CAM_CHUNK = 8192  # predicted-class maps in memory at a time


def _predicted_class_concentrations(cams: np.ndarray, cam_index: np.ndarray | None = None) -> np.ndarray:
    """cam_concentrations of the predicted-class map of cams' rows (or of rows cam_index),
    CAM_CHUNK maps at a time: cams may be a memory map of 100k+ images."""
    rows = np.arange(len(cams)) if cam_index is None else np.asarray(cam_index, dtype=np.int64)
    return np.concatenate([cam_concentrations(np.asarray(_predicted_maps(cams, rows[start:start + CAM_CHUNK]),
                                                         dtype=np.float32))
                           for start in range(0, len(rows), CAM_CHUNK)])


def _predicted_maps(cams: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """cams[rows, 0], read as one slice when the rows follow each other (as evaluation writes them)."""
    if len(rows) and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
        return cams[int(rows[0]):int(rows[0]) + len(rows), 0]
    return cams[rows, 0]


def compute_attributes(predictions: pd.DataFrame, cams: np.ndarray | None, *, workers: int | None = None,
                       progress: Progress | None = None) -> pd.DataFrame:
    """One row per prediction row (image_id + attributes), each image loaded from its
    path; unreadable images get NaNs. For runs evaluated without attributes."""
    def one(path: str) -> np.ndarray:
        try:
            return pixel_row(load_image(path))
        except ImageLoadError:
            return pixel_row(None)

    rows = []
    # OpenCV and NumPy release the GIL, so threads overlap well.
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 1)) as pool:
        for n, values in enumerate(tqdm(pool.map(one, predictions["path"]), total=len(predictions),
                                        desc="attributes", unit="img"), start=1):
            rows.append(values)
            if progress and (n % 25 == 0 or n == len(predictions)):
                progress(n / len(predictions), f"attributes for {n}/{len(predictions)} images")
    cam_index = predictions["cam_index"].to_numpy() if cams is not None else None
    return attributes_table(predictions["image_id"].tolist(), np.array(rows).reshape(-1, len(PIXEL_COLUMNS)), cams,
                            cam_index)


def write_attributes(run_dir: str | os.PathLike, attributes: pd.DataFrame) -> None:
    write_parquet(Path(run_dir) / ATTRIBUTES_FILE, attributes)


def read_attributes(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    path = Path(run_dir) / ATTRIBUTES_FILE
    return pd.read_parquet(path) if path.exists() else None


def compute_for_run(run_dir: str | os.PathLike, progress: Progress | None = None) -> pd.DataFrame:
    """For an older run evaluated without attributes: compute and store them."""
    run_dir = Path(run_dir)
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    cams = np.load(run_dir / "cams.npy", mmap_mode="r") if (run_dir / "cams.npy").exists() else None
    attributes = compute_attributes(predictions, cams, progress=progress)
    write_attributes(run_dir, attributes)
    return attributes
