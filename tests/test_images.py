import io

import numpy as np
import pytest
from PIL import Image

from emotion_core.images import ImageLoadError, describe_image, is_placeholder, load_image, to_rgb


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    loaded = load_image(encode(image, "JPEG", exif=exif, quality=95))
    assert loaded.size == (20, 40)
    top = np.asarray(loaded)[2, 10]
    assert top[2] > 150 and top[0] < 100  # the left strip is now on top


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "I;16", "LA", "RGBA"])
def test_every_mode_becomes_rgb(mode):
    base = Image.new("RGB", (8, 8), (200, 100, 50))
    image = base.convert(mode) if mode != "I;16" else Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16))
    fmt = {"CMYK": "JPEG", "P": "GIF"}.get(mode, "PNG")
    loaded = load_image(encode(image, fmt))
    assert loaded.mode == "RGB" and loaded.size == (8, 8)


def test_palette_with_alpha_in_memory():
    image = Image.new("RGB", (8, 8), (10, 20, 30)).convert("P").convert("PA")
    assert to_rgb(image).mode == "RGB"


def test_sixteen_bit_scaled_not_clipped():
    image = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    value = np.asarray(load_image(encode(image, "PNG")))[0, 0, 0]
    assert 120 <= value <= 135  # half of 65535 -> about half of 255, not 255


def test_transparency_is_composited_on_white():
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert tuple(np.asarray(load_image(encode(image, "PNG")))[0, 0]) == (255, 255, 255)


def test_decompression_bomb_refused():
    data = encode(Image.new("L", (3000, 3000)), "PNG")
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(data, max_pixels=1_000_000)


def test_truncated_file_raises_clear_error():
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(data[: len(data) // 2])


def test_non_image_and_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(b"hello, this is text")
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    data = buffer.getvalue()
    assert describe_image(data)["frames"] == 2
    assert np.asarray(load_image(data))[0, 0, 0] > 200


def test_placeholder_heuristic():
    placeholder = Image.new("RGB", (500, 374), (238, 238, 238))
    placeholder.paste((200, 200, 200), (200, 150, 300, 220))
    photo = Image.fromarray(np.random.default_rng(1).integers(100, 140, (374, 500, 3), dtype=np.uint8))
    assert is_placeholder(placeholder)
    assert not is_placeholder(photo)
