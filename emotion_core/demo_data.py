"""Seeded synthetic images for the built-in demo (SYNTHETIC: not FI, not real photos).

Each emotion gets a drawn scene with its own colours and motif. The paper's failure
modes are planted and recorded in `demo_trait`. A planted image is drawn as a scene of
the emotion it gets mistaken for (that emotion's background and motif at full strength,
its own motif only faint) with a trait that many training images of that other emotion
share (CONFOUNDERS), so any model that fits the training images makes the mistake,
whatever its seed, CPU or thread count:
  anger in black and white, a sad scene           -> Sadness     (the paper: 11 of 16 monochrome)
  sadness on a green nature background, sunny    -> Contentment
  sadness in red, warm close-ups of angry scenes  -> Anger
  contentment with animal faces on a sad scene    -> Sadness     (non-human faces)
  sadness as sad words on a cheerful scene        -> Amusement   (text in images)
Planted images are never in the training split and added to dev and test in numbers that
give every planted cell several images. Images with a trait (planted, or a confounder: a look
shared with another emotion) get divided simulated votes, never unanimous, like FI's ambiguous
images; the others mostly agree. So the votes say something about the pictures: a model trained
on them (training.train --target votes) can learn which looks are ambiguous.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from emotion_core.labels import EMOTIONS


@dataclass(frozen=True)
class FailureMode:
    emotion: str     # the true label
    trait: str       # what is planted, recorded in demo_trait (a tag name of the vocabulary)
    looks_like: str  # the emotion whose scene the image shows: the prediction it forces


PLANTED = (
    FailureMode("anger", "monochrome", "sadness"),
    FailureMode("sadness", "nature background", "contentment"),
    FailureMode("sadness", "red/warm tones", "anger"),
    FailureMode("contentment", "non-human face", "sadness"),
    FailureMode("sadness", "text in image", "amusement"),
)
# Per failure mode, planted images added to a split, as a share of its emotion's ordinary
# images there: none in training (the model only ever sees the other class's look, as FI's
# model saw too few images with text to learn from), several per cell in dev and test
# (22 test images per class at the default size give 11 planted ones per mode).
PLANTED_SHARE = {"train": 0.0, "dev": 0.5, "test": 0.5}
# (emotion, trait, share of its ordinary images): every planted trait is common in the
# class its failure mode is mistaken for (as black-and-white photos are among FI's sad
# images), so a planted image looks like many training images of that class and like
# almost none of its own: a model that fits the training images cannot get it right.
# (Nature backgrounds need no confounder: they are contentment's own background.)
CONFOUNDERS = (
    ("sadness", "monochrome", 0.30),
    ("sadness", "non-human face", 0.30),
    ("anger", "red/warm tones", 0.30),
    ("amusement", "text in image", 0.40),
)
MONOCHROME_LEVEL = 118.0
BORROWED_BACKGROUND = 0.2  # share of ordinary images drawn on another emotion's background
FAINT_OWN_MOTIF = 0.12     # most a planted image shows of its own emotion's motif
_MODES = {(mode.emotion, mode.trait): mode for mode in PLANTED}
# Backgrounds an ordinary image may borrow: never the scene of one of its emotion's failure
# modes, so that every image with that look is planted, and recorded as such.
_FORCED = {(mode.emotion, mode.looks_like) for mode in PLANTED}
_BORROWABLE = {label: [e for e in EMOTIONS if (label, e) not in _FORCED] for label in EMOTIONS}
# Words written into an image, by its true emotion. Amusing captions use any words (as
# memes do), sad ones too: the network sees text, not its meaning, as in the paper.
SAD_WORDS = ("RIP", "MISS YOU", "GOODBYE", "LOST", "ALONE")
WORDS = {"sadness": SAD_WORDS, "amusement": SAD_WORDS + ("LOL", "HAHA", "FUN!", "OOPS")}


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
    """Images with their split: n_per_class ordinary images per emotion, plus the planted
    failure modes in dev and test (PLANTED_SHARE)."""
    rng = np.random.default_rng(seed)
    items = []
    for label in EMOTIONS:
        n_dev, n_test = round(n_per_class * split[1]), round(n_per_class * split[2])
        for part, count in (("train", n_per_class - n_dev - n_test), ("dev", n_dev), ("test", n_test)):
            for trait in _assign_traits(label, part, count, rng):
                mode = _MODES.get((label, trait))
                image = _draw(label, trait, size, rng, looks_like=mode.looks_like if mode else None)
                agree, disagree = simulate_votes(rng, ambiguous=bool(trait))
                items.append(DemoImage(image, label, trait, agree, disagree, part))
    return items


def _assign_traits(label: str, part: str, count: int, rng: np.random.Generator) -> list[str]:
    """Traits of one emotion's images in one split: `count` ordinary images (some with a
    confounder) and the planted ones on top, in random order."""
    traits = [""] * count
    position = 0
    for emotion, trait, share in CONFOUNDERS:
        if emotion == label:
            n = int(round(share * count))
            traits[position:position + n] = [trait] * n
            position += n
    for mode in PLANTED:
        if mode.emotion == label:
            traits += [mode.trait] * int(round(PLANTED_SHARE[part] * count))
    return list(rng.permutation(traits))


def simulate_votes(rng: np.random.Generator, ambiguous: bool, voters: int = 5) -> tuple[int, int]:
    """(agree, disagree) of a majority-positive image: each voter agrees with probability 0.88, or 0.62 on
    an ambiguous image, which also always has a disagree vote (3/2 or 4/1 of 5, never unanimous)."""
    p = 0.62 if ambiguous else 0.88
    while True:
        agree = int(rng.binomial(voters, p))
        if agree > voters - agree and not (ambiguous and agree == voters):
            return agree, voters - agree


def _draw(label: str, trait: str, size: int, rng: np.random.Generator, looks_like: str | None) -> Image.Image:
    """A scene of `looks_like` (a planted image) or of `label`, then the trait."""
    scene = looks_like or label
    background = scene
    if not trait and rng.random() < BORROWED_BACKGROUND:  # scenes are not always typical
        background = _BORROWABLE[label][rng.integers(len(_BORROWABLE[label]))]
    canvas = Image.new("RGB", (size, size))
    _BACKGROUNDS[background](ImageDraw.Draw(canvas), size, rng)
    # a planted image shows the other class's scene at its clearest
    canvas = _with_motif(canvas, scene, rng.uniform(0.8 if looks_like else 0.45, 1.0), rng)
    if looks_like:
        # only a hint of the true emotion: too faint to outweigh the other scene
        canvas = _with_motif(canvas, label, rng.uniform(0.0, FAINT_OWN_MOTIF), rng)
    draw = ImageDraw.Draw(canvas)
    if trait == "non-human face":
        _animal_face(draw, size, rng)
    if trait == "text in image":
        _text(draw, WORDS[label], size, rng)
    pixels = np.asarray(canvas).astype(np.float32)
    pixels += rng.normal(0, 10, pixels.shape)  # sensor-like noise (gray noise once desaturated)
    if trait == "red/warm tones":
        pixels = pixels * np.array([0.35, 0.15, 0.12]) + np.array([150, 15, 10])
    if trait == "monochrome":
        gray = pixels.mean(axis=2, keepdims=True)
        # black and white photos share a mid-gray tone, whatever the scene's colours
        pixels = (gray - gray.mean() + MONOCHROME_LEVEL).repeat(3, axis=2)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _with_motif(canvas: Image.Image, emotion: str, strength: float, rng: np.random.Generator) -> Image.Image:
    with_motif = canvas.copy()
    _MOTIFS[emotion](ImageDraw.Draw(with_motif), size=canvas.width, rng=rng)
    return Image.blend(canvas, with_motif, strength)


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


def _text(draw, words, size, rng):
    word = words[rng.integers(len(words))]
    font = ImageFont.load_default(size=max(8, size // 6))
    position = (rng.integers(2, size // 4), rng.integers(size // 3, 2 * size // 3))
    draw.text(position, word, fill=(250, 250, 250), font=font, stroke_width=1, stroke_fill=(20, 20, 20))
