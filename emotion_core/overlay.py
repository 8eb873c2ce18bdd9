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


# colourise() of every 8-bit heat value: an upsampled CAM is coloured by a table lookup per pixel
_HEAT_COLOURS = colourise(np.arange(256, dtype=np.float32) / 255.0)  # (256, 3)


def overlay(image: Image.Image, cam: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The CAM upsampled (bilinear) to the image and blended over it."""
    cam = np.asarray(cam, dtype=np.float32)
    heat = Image.fromarray((np.clip(cam, 0, 1) * 255).astype(np.uint8)).resize(image.size, Image.BILINEAR)
    coloured = Image.fromarray(_HEAT_COLOURS[np.asarray(heat)])
    return Image.blend(image.convert("RGB"), coloured, alpha)


def side_by_side(left: Image.Image, right: Image.Image, gap: int = 6) -> Image.Image:
    """Two images of the same size in one, with a white gap between them."""
    pair = Image.new("RGB", (left.width + gap + right.width, max(left.height, right.height)), "white")
    pair.paste(left.convert("RGB"), (0, 0))
    pair.paste(right.convert("RGB"), (left.width + gap, 0))
    return pair


class ImageCache:
    """Thumbnails and overlays made once per image and kept under cache_dir as JPEG: the dashboard
    sends a JPEG as it is, while a PNG it would decode and re-encode on every run, and a JPEG
    thumbnail is several times smaller to send."""

    QUALITY = 88

    def __init__(self, cache_dir: str | os.PathLike, size: int = 224):
        self.dir = Path(cache_dir)
        self.size = size

    def _path(self, key: str) -> Path:
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.dir / digest[:2] / f"{digest}.jpg"

    def thumbnail(self, image_path: str) -> Path:
        return self._cached(f"thumb|{image_path}|{self.size}", lambda: self._thumb(image_path))

    def cam_overlay(self, image_path: str, cam: np.ndarray, key: str) -> Path:
        """The image with one CAM over it; key names the CAM (run and class, or run and row)."""
        return self._cached(f"cam|{image_path}|{key}|{self.size}",
                            lambda: overlay(self._cached_thumb(image_path), cam))

    def cam_pair(self, image_path: str, cams: np.ndarray, key: str) -> Path:
        """(2, h, w) CAMs, e.g. of the predicted and the true class, as two overlays side by side in one
        picture; key names the CAMs (run and prediction row)."""
        def make() -> Image.Image:
            thumb = self._cached_thumb(image_path)
            return side_by_side(overlay(thumb, cams[0]), overlay(thumb, cams[1]))

        return self._cached(f"pair|{image_path}|{key}|{self.size}", make)

    def _thumb(self, image_path: str) -> Image.Image:
        image = load_image(image_path)
        image.thumbnail((self.size, self.size))
        return image

    def _cached_thumb(self, image_path: str) -> Image.Image:
        """The thumbnail from the cache (made if missing): overlays start from it rather than from
        the full-size photo, several times faster to decode."""
        with Image.open(self.thumbnail(image_path)) as thumb:
            return thumb.convert("RGB")

    def _cached(self, key: str, make) -> Path:
        path = self._path(key)
        if not path.exists():
            with atomic_path(path) as tmp:
                make().convert("RGB").save(tmp, format="JPEG", quality=self.QUALITY)
        return path
