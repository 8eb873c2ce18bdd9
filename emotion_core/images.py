"""The one image loader: any file or upload in, a correct 8-bit RGB PIL image out."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# 50 megapixels: a 7000x7000 photo loads, a decompression bomb does not.
DEFAULT_MAX_PIXELS = 50_000_000
_WHITE = (255, 255, 255)


class ImageLoadError(ValueError):
    """An input that is not a usable image; the message is one line for the user.

    `reason` is one of REASONS, for counting (e.g. in an import report)."""

    def __init__(self, message: str, reason: str = "unreadable"):
        super().__init__(message)
        self.reason = reason


MISSING, NOT_AN_IMAGE, TRUNCATED, TOO_LARGE = "missing", "unreadable", "truncated", "too large"
REASONS = (MISSING, NOT_AN_IMAGE, TRUNCATED, TOO_LARGE)


ImageSource = str | os.PathLike | bytes | BinaryIO


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode `source` fully and return it as upright 8-bit RGB.

    EXIF orientation is applied; grayscale, palette, 16-bit and CMYK are converted;
    transparency is composited on white; an animated image gives its first frame.
    Raises ImageLoadError for non-images, truncated files and images over `max_pixels`.
    """
    name = _source_name(source)
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageLoadError(
                        f"{name}: {width}x{height} pixels is over the limit of "
                        f"{max_pixels:,} pixels (possible decompression bomb)", TOO_LARGE)
                image.seek(0)  # first frame of an animated GIF/PNG/WebP
                image.load()   # decode now so truncation is caught here, not later
                return to_rgb(ImageOps.exif_transpose(image))
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(f"{name}: image is over the limit of {max_pixels:,} pixels "
                             "(possible decompression bomb)", TOO_LARGE) from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image file (format not recognised)", NOT_AN_IMAGE) from None
    except FileNotFoundError:
        raise ImageLoadError(f"{name}: file not found", MISSING) from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageLoadError(f"{name}: unreadable or truncated image ({err})", TRUNCATED) from None


def describe_image(data: bytes) -> dict:
    """Header facts (format, mode, size, frames) without decoding; {} if unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return {"format": image.format, "mode": image.mode, "size": image.size,
                    "frames": getattr(image, "n_frames", 1)}
    except Exception:
        return {}


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (alpha composited on white)."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        image = Image.fromarray(_high_depth_to_uint8(np.asarray(image)), mode="L")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA", "La"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "RGBa"):
        background = Image.new("RGB", image.size, _WHITE)
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB") if image.mode != "RGB" else image.copy()


def _high_depth_to_uint8(pixels: np.ndarray) -> np.ndarray:
    pixels = pixels.astype(np.float64)
    if pixels.dtype.kind == "f" and pixels.max(initial=0) <= 1.0:
        scale = 1.0  # float images in [0, 1]
    else:
        scale = 65535.0 if pixels.max(initial=0) > 255 else 255.0
    return np.clip(np.round(pixels / scale * 255.0), 0, 255).astype(np.uint8)


def is_placeholder(image: Image.Image) -> bool:
    """Heuristic for Flickr's "This photo is no longer available" image.

    The placeholder is a flat light-gray canvas with a small gray icon and text: few
    distinct colours, one colour covering most pixels, no chroma. Real photographs,
    even foggy ones, carry sensor and JPEG noise and fail the colour-count test.
    """
    small = image.convert("RGB").resize((128, 96))
    pixels = np.asarray(small).reshape(-1, 3).astype(np.int16)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    chroma = np.abs(pixels.max(axis=1) - pixels.min(axis=1))
    return bool(len(colours) <= 64 and counts.max() >= 0.75 * len(pixels) and chroma.max() <= 12)


def _source_name(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name
    return getattr(source, "name", None) or "uploaded image"
