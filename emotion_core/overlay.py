"""Drawing Grad-CAM maps over images, and an on-disk cache of thumbnails and overlays."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from emotion_core.fileio import atomic_path
from emotion_core.images import load_image

# A compact 'jet'-like colour ramp: blue (cold) -> cyan -> yellow -> red (hot).
_RAMP = np.array([[0, 0, 128], [0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0], [128, 0, 0]], dtype=float)


def colourise(cam: np.ndarray) -> np.ndarray:
    """(h, w) values in [0, 1] -> (h, w, 3) uint8 colours."""
    positions = np.clip(cam, 0, 1) * (len(_RAMP) - 1)
    low = np.floor(positions).astype(int).clip(0, len(_RAMP) - 2)
    frac = (positions - low)[..., None]
    return (_RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac).astype(np.uint8)


def overlay(image: Image.Image, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The CAM upsampled (bilinear) to the image and blended over it."""
    cam = np.asarray(cam, dtype=np.float32)
    heat = Image.fromarray((np.clip(cam, 0, 1) * 255).astype(np.uint8)).resize(image.size, Image.BILINEAR)
    coloured = Image.fromarray(colourise(np.asarray(heat, dtype=np.float32) / 255.0))
    return Image.blend(image.convert("RGB"), coloured, alpha)


class ImageCache:
    """Thumbnails and overlays made once per image and kept under cache_dir as PNG."""

    def __init__(self, cache_dir: str | os.PathLike, size: int = 224):
        self.dir = Path(cache_dir)
        self.size = size

    def _path(self, key: str) -> Path:
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.dir / digest[:2] / f"{digest}.png"

    def thumbnail(self, image_path: str) -> Path:
        return self._cached(f"thumb|{image_path}|{self.size}", lambda: self._thumb(image_path))

    def cam_overlay(self, image_path: str, cam: np.ndarray, key: str) -> Path:
        return self._cached(f"cam|{image_path}|{key}|{self.size}",
                            lambda: overlay(self._thumb(image_path), cam))

    def _thumb(self, image_path: str) -> Image.Image:
        image = load_image(image_path)
        image.thumbnail((self.size, self.size))
        return image

    def _cached(self, key: str, make) -> Path:
        path = self._path(key)
        if not path.exists():
            with atomic_path(path) as tmp:
                make().save(tmp, format="PNG")
        return path
