"""Automatic image attributes, computed once per image at evaluation time.

monochrome (low chroma), red/warm tones, brightness, colourfulness (Hasler and
Süsstrunk 2003), contrast, human and cat faces (OpenCV Haar cascades), and how
concentrated the Grad-CAM is. Boolean attributes become suggested tags.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Callable

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
# boolean attribute -> the tag it suggests
SUGGESTED_TAGS = {"monochrome": "monochrome", "warm": "red/warm tones", "has_face": "human face",
                  "has_cat_face": "non-human face"}
BOOLEAN_ATTRIBUTES = tuple(SUGGESTED_TAGS)
CONTINUOUS_ATTRIBUTES = ("brightness", "colorfulness", "contrast", "cam_concentration")
Progress = Callable[[float, str], None]


def chroma_p95(rgb: np.ndarray) -> float:
    """95th percentile of per-pixel chroma, (max - min) / 255 over R, G, B."""
    chroma = (rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)) / 255.0
    return float(np.percentile(chroma, 95))


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


def cam_concentration(cam: np.ndarray) -> float:
    """Share of saliency mass in the top 10% of the map's cells (0.1 = spread evenly)."""
    values = np.sort(np.asarray(cam, dtype=np.float64).ravel())[::-1]
    total = values.sum()
    if total <= 0:
        return float("nan")
    return float(values[: max(1, int(np.ceil(0.1 * len(values))))].sum() / total)


@lru_cache(maxsize=None)
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name))
    if cascade.empty():
        raise RuntimeError(f"OpenCV Haar cascade {name} not found (install opencv-python-headless<5)")
    return cascade


def count_faces(rgb: np.ndarray, cascade: str) -> int:
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    side = max(24, min(gray.shape) // 10)
    found = _cascade(cascade).detectMultiScale(gray, scaleFactor=1.2, minNeighbors=4, minSize=(side, side))
    return int(len(found))


def image_attributes(image: Image.Image, cam: np.ndarray | None = None) -> dict:
    image = image.convert("RGB")
    image.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE))
    rgb = np.ascontiguousarray(np.asarray(image))
    brightness = luma(rgb.astype(np.float64))
    chroma, warm = chroma_p95(rgb), warm_share(rgb)
    faces = count_faces(rgb, "haarcascade_frontalface_default.xml")
    cat_faces = count_faces(rgb, "haarcascade_frontalcatface.xml")
    return {"chroma_p95": chroma, "monochrome": chroma < MONOCHROME_CHROMA, "warm_share": warm,
            "warm": warm > WARM_SHARE, "brightness": float(brightness.mean()), "colorfulness": colorfulness(rgb),
            "contrast": float(brightness.std()), "faces": faces, "has_face": faces > 0,
            "cat_faces": cat_faces, "has_cat_face": cat_faces > 0,
            "cam_concentration": cam_concentration(cam) if cam is not None else float("nan")}


def compute_attributes(predictions: pd.DataFrame, cams: np.ndarray | None, *, workers: int | None = None,
                       progress: Progress | None = None) -> pd.DataFrame:
    """One row per prediction row (image_id + attributes); unreadable images get NaNs."""
    def one(position: int) -> dict:
        row = predictions.iloc[position]
        cam = None if cams is None else np.asarray(cams[int(row["cam_index"]), 0], dtype=np.float32)
        try:
            values = image_attributes(load_image(row["path"]), cam)
        except ImageLoadError:
            values = {}
        return {"image_id": row["image_id"], **values}

    rows = []
    # OpenCV and NumPy release the GIL, so threads overlap well.
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 1)) as pool:
        for n, values in enumerate(tqdm(pool.map(one, range(len(predictions))), total=len(predictions),
                                        desc="attributes", unit="img"), start=1):
            rows.append(values)
            if progress and (n % 25 == 0 or n == len(predictions)):
                progress(n / len(predictions), f"attributes for {n}/{len(predictions)} images")
    table = pd.DataFrame(rows)
    for column in BOOLEAN_ATTRIBUTES:
        table[column] = table[column].fillna(False).astype(bool) if column in table else False
    return table


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
