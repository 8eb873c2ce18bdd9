"""Seeded synthetic images for the built-in demo (SYNTHETIC: not FI, not real photos).

Each emotion gets a drawn scene with its own colours and motif. The paper's failure
modes are planted in a share of images and recorded in `demo_trait`:
  anger shown in black and white (the paper: Anger -> Sadness, 11 of 16 monochrome),
  sadness on green nature backgrounds (Sadness -> Contentment),
  sadness in red, warm close-ups (Sadness -> Anger),
  contentment with animal faces (Contentment -> Sadness, non-human faces),
  sadness with text in the image.
The failure modes are rare in the training split and common in dev and test.
Planted images also get more divided simulated votes, like FI's ambiguous images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from emotion_core.labels import EMOTIONS

# (emotion, trait, share of that emotion's images). The failure modes are rare in their
# own class; the confounders make the trait common in the class it gets mistaken for,
# as black-and-white photos are common among FI's sad images.
PLANTED = (
    ("anger", "monochrome", 0.22),
    ("sadness", "nature background", 0.20),
    ("sadness", "red/warm tones", 0.12),
    ("sadness", "text in image", 0.10),
    ("contentment", "non-human face", 0.18),
)
CONFOUNDERS = (
    ("sadness", "monochrome", 0.30),
    ("sadness", "non-human face", 0.15),
)
MONOCHROME_LEVEL = 118.0
TRAIN_SHARE = 0.2  # failure modes are this much rarer in the training split
BORROWED_BACKGROUND = 0.2  # share of ordinary images drawn on another emotion's background
_FAILURE_MODES = {(emotion, trait) for emotion, trait, _ in PLANTED}
SAD_WORDS = ("RIP", "MISS YOU", "GOODBYE", "LOST", "ALONE")


@dataclass
class DemoImage:
    image: Image.Image
    label: str
    trait: str      # "" when nothing is planted
    agree: int
    disagree: int
    split: str = "train"


def generate(n_per_class: int, size: int = 64, seed: int = 0,
             split: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> list[DemoImage]:
    """Images with their split: failure modes are rare in train and common in dev/test,
    so that a model trained on them shows the paper's errors when evaluated."""
    rng = np.random.default_rng(seed)
    items = []
    for label in EMOTIONS:
        n_dev, n_test = round(n_per_class * split[1]), round(n_per_class * split[2])
        for part, count in (("train", n_per_class - n_dev - n_test), ("dev", n_dev), ("test", n_test)):
            for trait in _assign_traits(label, count, rng, TRAIN_SHARE if part == "train" else 1.0):
                failure_mode = (label, trait) in _FAILURE_MODES
                image = _draw(label, trait, size, rng, faint=failure_mode)
                agree, disagree = simulate_votes(rng, ambiguous=failure_mode)
                items.append(DemoImage(image, label, trait, agree, disagree, part))
    return items


def _assign_traits(label: str, count: int, rng: np.random.Generator, failure_scale: float) -> list[str]:
    traits = [""] * count
    position = 0
    for emotion, trait, share in PLANTED + CONFOUNDERS:
        if emotion == label:
            scale = failure_scale if (emotion, trait) in _FAILURE_MODES else 1.0
            n = int(round(share * scale * count))
            traits[position:position + n] = [trait] * n
            position += n
    return list(rng.permutation(traits))


def simulate_votes(rng: np.random.Generator, ambiguous: bool, voters: int = 5) -> tuple[int, int]:
    """Agree votes of a majority-positive image; ambiguous images split more often."""
    p = 0.62 if ambiguous else 0.88
    while True:
        agree = int(rng.binomial(voters, p))
        if agree > voters - agree:
            return agree, voters - agree


def _draw(label: str, trait: str, size: int, rng: np.random.Generator, faint: bool) -> Image.Image:
    canvas = Image.new("RGB", (size, size))
    background = "nature" if trait == "nature background" else label
    if not trait and rng.random() < BORROWED_BACKGROUND:
        background = EMOTIONS[rng.integers(len(EMOTIONS))]  # scenes are not always typical
    _BACKGROUNDS[background](ImageDraw.Draw(canvas), size, rng)
    with_motif = canvas.copy()
    _MOTIFS[label](ImageDraw.Draw(with_motif), size, rng)
    # Planted images show their own emotion's motif only faintly: the trait dominates.
    strength = rng.uniform(0.0, 0.3) if faint else rng.uniform(0.45, 1.0)
    canvas = Image.blend(canvas, with_motif, strength)
    draw = ImageDraw.Draw(canvas)
    if trait == "non-human face":
        _animal_face(draw, size, rng)
    if trait == "text in image":
        _text(draw, size, rng)
    pixels = np.asarray(canvas).astype(np.float32)
    pixels += rng.normal(0, 10, pixels.shape)  # sensor-like noise (gray noise once desaturated)
    if trait == "red/warm tones":
        pixels = pixels * np.array([0.35, 0.15, 0.12]) + np.array([150, 15, 10])
    if trait == "monochrome":
        gray = pixels.mean(axis=2, keepdims=True)
        # black and white photos share a mid-gray tone, whatever the scene's colours
        pixels = (gray - gray.mean() + MONOCHROME_LEVEL).repeat(3, axis=2)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int = 20) -> tuple[int, ...]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _fill(colour):
    return lambda draw, size, rng: draw.rectangle([0, 0, size, size], fill=_jitter(colour, rng))


def _sky_and_ground(sky, ground):
    def paint(draw, size, rng):
        horizon = int(size * rng.uniform(0.45, 0.65))
        draw.rectangle([0, 0, size, horizon], fill=_jitter(sky, rng))
        draw.rectangle([0, horizon, size, size], fill=_jitter(ground, rng))
    return paint


_BACKGROUNDS = {
    "amusement": _fill((250, 210, 60)),
    "anger": _fill((190, 25, 20)),
    "awe": _sky_and_ground((30, 60, 150), (20, 30, 70)),
    "contentment": _sky_and_ground((150, 200, 240), (90, 180, 70)),
    "disgust": _fill((110, 100, 40)),
    "excitement": _fill((240, 80, 200)),
    "fear": _fill((15, 15, 20)),
    "sadness": _fill((105, 115, 135)),
    "nature": _sky_and_ground((150, 200, 240), (90, 180, 70)),
}


def _balloons(draw, size, rng):
    for _ in range(rng.integers(3, 6)):
        x, y, r = rng.integers(0, size), rng.integers(0, size), rng.integers(size // 12, size // 6)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def _zigzags(draw, size, rng):
    for _ in range(rng.integers(2, 4)):
        y = rng.integers(size // 6, size - size // 6)
        points = [(x, y + (size // 8) * (-1) ** i) for i, x in enumerate(range(0, size + 8, size // 8))]
        draw.line(points, fill=(10, 10, 10), width=max(2, size // 20))


def _mountain(draw, size, rng):
    peak = rng.integers(size // 4, 3 * size // 4)
    draw.polygon([(peak, size // 8), (peak - size // 2, size), (peak + size // 2, size)], fill=_jitter((225, 225, 235), rng))


def _sun(draw, size, rng):
    x, y, r = rng.integers(size // 6, size - size // 6), rng.integers(size // 8, size // 3), size // 9
    draw.ellipse([x - r, y - r, x + r, y + r], fill=(250, 220, 80))


def _blobs(draw, size, rng):
    for _ in range(rng.integers(4, 8)):
        x, y = rng.integers(0, size, 2)
        w, h = rng.integers(size // 10, size // 4, 2)
        draw.ellipse([x, y, x + w, y + h], fill=_jitter((120, 150, 50), rng, 25))


def _stripes(draw, size, rng):
    for offset in range(-size, size, size // 6):
        colour = tuple(int(c) for c in rng.integers(40, 256, 3))
        draw.line([(offset, size), (offset + size, 0)], fill=colour, width=max(3, size // 14))


def _branches(draw, size, rng):
    for _ in range(rng.integers(3, 6)):
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, size, 4))
        draw.line([(x0, y0), (x1, y1)], fill=(200, 200, 210), width=1)
    ex, ey = rng.integers(size // 4, 3 * size // 4, 2)
    for dx in (-size // 12, size // 12):
        draw.ellipse([ex + dx - 2, ey - 2, ex + dx + 2, ey + 2], fill=(230, 230, 60))


def _rain(draw, size, rng):
    for _ in range(rng.integers(10, 18)):
        x, y = rng.integers(0, size, 2)
        draw.line([(x, y), (x, y + size // 5)], fill=(185, 195, 215), width=1)


_MOTIFS = {
    "amusement": _balloons, "anger": _zigzags, "awe": _mountain, "contentment": _sun,
    "disgust": _blobs, "excitement": _stripes, "fear": _branches, "sadness": _rain,
}


def _animal_face(draw, size, rng):
    x, y, r = size // 2 + rng.integers(-size // 8, size // 8), size // 2, size // 5
    fur = _jitter((120, 110, 100), rng)
    draw.polygon([(x - r, y - r // 2), (x - r // 2, y - r - r // 2), (x - r // 4, y - r)], fill=fur)
    draw.polygon([(x + r, y - r // 2), (x + r // 2, y - r - r // 2), (x + r // 4, y - r)], fill=fur)
    draw.ellipse([x - r, y - r, x + r, y + r], fill=fur)
    for dx in (-r // 2, r // 2):
        draw.ellipse([x + dx - 2, y - 3, x + dx + 2, y + 1], fill=(20, 20, 20))


def _text(draw, size, rng):
    word = SAD_WORDS[rng.integers(len(SAD_WORDS))]
    font = ImageFont.load_default(size=max(8, size // 6))
    draw.text((rng.integers(2, size // 4), rng.integers(size // 3, 2 * size // 3)), word, fill=(250, 250, 250), font=font)
