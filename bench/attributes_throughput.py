"""Image attributes: images/s per CPU core (per attribute and in total), face detection
against a search over every window, images/s of the evaluation with and without attributes
for 0, 1 and 2 loader workers, and trend discovery over all 56 off-diagonal cells of a
synthetic run (22,000 predictions by default).

  python bench/attributes_throughput.py
  python bench/attributes_throughput.py --images 10 --faces 20 --eval-images 16 --predictions 2000   # quick
  python bench/attributes_throughput.py --eval-arch vgg19 --eval-size 112   # a model slower than the loader
  python bench/attributes_throughput.py --sections eval --eval-arch vgg19 --eval-size 112 --torch-threads 1 \
      --workers 0,1 --eval-images 48   # the issue's "at most 1.2x" on this 2-core machine

The evaluation section prints, per loader worker count, images/s without and with the
attributes and their ratio (time with / time without; goal <= 1.2 "with enough workers").
Attributes cost a loader worker about 25 ms of CPU per photo, VGG19 at 112x112 about 70 ms
per image on one CPU thread: with torch on one thread and one worker, the worker has the
second core to itself and keeps ahead of the model, which is the realistic setting (a GPU
evaluation with enough workers). With 0 workers everything runs in the main process and the
ratio shows the attributes' full cost; with more workers than free cores they compete with
the model, and the ratio measures the machine, not the code.

Two sets of 500x375 images (FI's photo size): "photos", crops of the three photographs that
ship with matplotlib and scikit-learn (one a portrait), and "smooth noise", blurred random
colour fields, on which the Haar cascades work hardest. Per-core figures are images per
second of process CPU time (one process; OpenCV and NumPy run one thread here), so other
load on the machine slows them less than wall time.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.cbook
import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageFilter, ImageOps
from sklearn.datasets import load_sample_image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.synthetic_run import make_run  # noqa: E402
from emotion_core import attributes as attr  # noqa: E402
from emotion_core.demo_data import generate  # noqa: E402
from emotion_core.evaluation import evaluate_frame  # noqa: E402
from emotion_core.images import load_image  # noqa: E402
from emotion_core.model import ModelConfig, build_model  # noqa: E402
from emotion_core.predict import Predictor  # noqa: E402
from emotion_core.transforms import eval_transform  # noqa: E402
from emotion_core.trends import discover, image_features  # noqa: E402

SIZE = (500, 375)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60, help="images per set for the per-core figures (default 60)")
    parser.add_argument("--faces", type=int, default=120,
                        help="photos with a pasted face for the detection check (default 120)")
    parser.add_argument("--eval-images", type=int, default=96,
                        help="JPEG files evaluated per worker count (default 96)")
    parser.add_argument("--workers", default="0,1,2", help="loader worker counts to compare (default 0,1,2)")
    parser.add_argument("--eval-arch", default="vgg_small", choices=["vgg_small", "vgg19"],
                        help="model of the evaluation runs (default vgg_small: a fast model, so the loader shows)")
    parser.add_argument("--eval-size", type=int, default=64, help="input size of the evaluation runs (default 64)")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch threads of the evaluation runs (default 0: torch's own choice)")
    parser.add_argument("--sections", default="per-core,faces,eval,trends",
                        help="what to run, comma-separated (default all: per-core,faces,eval,trends)")
    parser.add_argument("--predictions", type=int, default=22_000,
                        help="predictions in the run that trend discovery tests (default 22000)")
    return parser


def shipped_photos() -> list[Image.Image]:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        portrait = Image.open(handle).convert("RGB")
    return [portrait] + [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]


def photo_crops(n: int, seed: int = 0) -> list[Image.Image]:
    """Random crops (60-100% of each side), some mirrored, of the shipped photographs."""
    rng, sources, crops = np.random.default_rng(seed), shipped_photos(), []
    for k in range(n):
        source = sources[k % len(sources)]
        width, height = (int(side * rng.uniform(0.6, 1.0)) for side in source.size)
        left, top = rng.integers(0, source.width - width + 1), rng.integers(0, source.height - height + 1)
        crop = source.crop((left, top, left + width, top + height)).resize(SIZE, Image.BICUBIC)
        crops.append(ImageOps.mirror(crop) if rng.random() < 0.5 else crop)
    return crops


def smooth_noise(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (SIZE[1] // 8, SIZE[0] // 8, 3), dtype=np.uint8))
            .resize(SIZE, Image.BICUBIC).filter(ImageFilter.GaussianBlur(2)) for _ in range(n)]


def per_core(fn, items) -> float:
    """Images per second of this process's CPU time."""
    started = time.process_time()
    for item in items:
        fn(item)
    return len(items) / (time.process_time() - started)


def print_per_core(name: str, images: list[Image.Image]) -> None:
    analysed = [attr.analysis_pixels(image) for image in images]
    grays = [attr.face_gray(rgb) for rgb in analysed]
    cam = np.random.default_rng(1).random((14, 14))
    transform = eval_transform(224)
    jpegs = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    print(f"{name}: {len(images)} images of {SIZE[0]}x{SIZE[1]}, analysed at <= {attr.ANALYSIS_SIDE}px, "
          "images/s per core:")
    rows = {
        "downsize to 320": (attr.analysis_pixels, images),
        "chroma (monochrome)": (attr.chroma_p95, analysed),
        "warm tones": (attr.warm_share, analysed),
        "brightness + contrast": (lambda a: attr.luma(a.astype(np.float64)).std(), analysed),
        "colorfulness": (attr.colorfulness, analysed),
        "human faces (Haar)": (lambda g: attr.face_boxes(g, attr.FACE_CASCADE), grays),
        "  ... as one detectMultiScale call": (lambda g: opencv_boxes(g, attr.FACE_CASCADE), grays),
        "cat faces (Haar)": (lambda g: attr.face_boxes(g, attr.CAT_FACE_CASCADE), grays),
        "  ... as one detectMultiScale call ": (lambda g: opencv_boxes(g, attr.CAT_FACE_CASCADE), grays),
        "CAM concentration": (lambda _: attr.cam_concentration(cam), images),
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a loader worker's setting; idle torch threads would spin on the clock
    try:
        for label, (fn, items) in rows.items():
            print(f"  {label:<40} {per_core(fn, items):9.1f}")
        print(f"  {'all attributes of a decoded image':<40} {per_core(attr.pixel_attributes, images):9.1f}"
              "   (goal >= 40)")
        without = per_core(lambda data: transform(load_image(data)), jpegs)
        with_attributes = per_core(lambda data: (lambda image: (transform(image), attr.pixel_row(image)))(
            load_image(data)), jpegs)
    finally:
        torch.set_num_threads(threads)
    print(f"  {'a loader worker: decode JPEG + 224 tensor':<40} {without:9.1f}")
    print(f"  {'  ... + all attributes':<40} {with_attributes:9.1f}   -> to keep up with a model at 1,000 "
          f"images/s: {1000 / without:.0f} workers without, {1000 / with_attributes:.0f} with attributes")


def pasted_faces(n: int, seed: int = 0) -> tuple[list[Image.Image], np.ndarray]:
    """Photos and noise fields with the portrait's head pasted in at a random place, its face
    12-60% of the short side (log-uniform); returns the images and the face shares."""
    rng = np.random.default_rng(seed)
    portrait = shipped_photos()[0]
    head = portrait.crop((110, 50, 420, 380))  # the face box is about 217 px of this 310 px crop
    backgrounds = [p.resize(SIZE) for p in shipped_photos()[1:]] + smooth_noise(2, seed=7)
    images, shares = [], np.exp(rng.uniform(np.log(0.12), np.log(0.6), n))
    for k, share in enumerate(shares):
        scale = share * SIZE[1] / 217
        pasted = head.resize((int(310 * scale), int(330 * scale)), Image.BICUBIC)
        pasted = ImageOps.mirror(pasted) if rng.random() < 0.5 else pasted
        image = backgrounds[k % len(backgrounds)].copy()
        image.paste(pasted, (int(rng.uniform(0, 1) * (SIZE[0] - pasted.width)),
                             int(rng.uniform(0, 1) * max(0, SIZE[1] - pasted.height))))
        images.append(image)
    return images, shares


def every_window_count(gray: np.ndarray, cascade: str) -> int:
    """The detector before FACE_MIN_SHARE: every window from the cascade's 24 px up."""
    side = max(24, min(gray.shape) // 10)
    return len(attr._cascade(cascade).detectMultiScale(gray, scaleFactor=1.2, minNeighbors=4, minSize=(side, side)))


def opencv_boxes(gray: np.ndarray, cascade: str) -> np.ndarray:
    """The one OpenCV call that attr.face_boxes stands for (it searches fewer windows)."""
    side = max(24, round(attr.FACE_MIN_SHARE * min(gray.shape)))
    found = attr._cascade(cascade).detectMultiScale(gray, scaleFactor=1.2, minNeighbors=4, minSize=(side, side))
    return np.asarray(found, dtype=np.int64).reshape(-1, 4)


def print_same_boxes_as_opencv(image_sets: dict[str, list[Image.Image]]) -> None:
    """attr.face_boxes against detectMultiScale, image by image, box by box."""
    print("attr.face_boxes against OpenCV's detectMultiScale (same settings), images with other boxes:")
    for name, images in image_sets.items():
        grays = [attr.face_gray(attr.analysis_pixels(image)) for image in images]
        for cascade in (attr.FACE_CASCADE, attr.CAT_FACE_CASCADE):
            mine, theirs = ([method(g, cascade) for g in grays] for method in (attr.face_boxes, opencv_boxes))
            other = sum(not np.array_equal(a, b) for a, b in zip(mine, theirs))
            decisions = sum((len(a) > 0) != (len(b) > 0) for a, b in zip(mine, theirs))
            print(f"  {name:<28} {cascade.removesuffix('.xml'):<32} {other} of {len(images)} "
                  f"(found by OpenCV in {sum(len(b) > 0 for b in theirs)}; other decision in {decisions})")


def print_face_check(n_faces: int, n_plain: int) -> None:
    images, shares = pasted_faces(n_faces)
    plain = photo_crops(n_plain, seed=3)[1::3] + photo_crops(n_plain, seed=3)[2::3] + smooth_noise(n_plain, seed=5)
    plain += [p.resize(SIZE) for p in shipped_photos()[1:]]
    faces_gray = [attr.face_gray(attr.analysis_pixels(image)) for image in images]
    plain_gray = [attr.face_gray(attr.analysis_pixels(image)) for image in plain]
    found_now = np.array([len(attr.face_boxes(g, attr.FACE_CASCADE)) > 0 for g in faces_gray])
    found_before = np.array([every_window_count(g, attr.FACE_CASCADE) > 0 for g in faces_gray])
    print(f"face detection, {n_faces} photos with a face pasted in, {len(plain)} without faces "
          f"(smallest window now {attr.FACE_MIN_SHARE:.1%} of the short side, before 24 px = 10%):")
    bins = [0.12, 0.15, 0.18, 0.22, 0.3, 0.45, 0.61]
    print("  face / short side  " + " ".join(f"{a:.0%}-{b:.0%}".rjust(9) for a, b in zip(bins, bins[1:])))
    for label, found in (("found now", found_now), ("found before", found_before)):
        shares_found = [found[(shares >= a) & (shares < b)] for a, b in zip(bins, bins[1:])]
        print(f"  {label:<18} " + " ".join(f"{s.mean():9.0%}" if len(s) else "        -" for s in shares_found))
    print(f"  same decision as before on {np.mean(found_now == found_before):.1%} of the face photos")
    for cascade in (attr.FACE_CASCADE, attr.CAT_FACE_CASCADE):
        now = sum(len(attr.face_boxes(g, cascade)) > 0 for g in plain_gray)
        before = sum(every_window_count(g, cascade) > 0 for g in plain_gray)
        print(f"  false detections without faces, {cascade.removesuffix('.xml'):<32} now {now}, before {before}")


def print_evaluation(images: list[Image.Image], n_files: int, worker_counts: list[int], arch: str, size: int) -> None:
    torch.manual_seed(0)
    predictor = Predictor(build_model(ModelConfig(arch=arch, input_size=size, pretrained=False)), size)
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for k in range(n_files):
            paths.append(str(Path(folder) / f"{k}.jpg"))
            images[k % len(images)].save(paths[-1], quality=90)
        rows = pd.DataFrame({"image_id": [str(k) for k in range(n_files)], "path": paths, "split": "test",
                             "label": "anger", "label_idx": 1, "agree": 3, "disagree": 2})
        print(f"evaluation of {n_files} JPEG photos, {arch} at {size}x{size} on CPU "
              f"({torch.get_num_threads()} torch threads), images/s (wall):")
        print(f"  {'workers':<8} {'without':>9} {'with attributes':>16} {'time with / without':>20}")
        for workers in worker_counts:
            rates = []
            for attributes in (False, True):
                started = time.perf_counter()
                evaluate_frame(predictor, rows, batch_size=16, workers=workers, attributes=attributes)
                rates.append(n_files / (time.perf_counter() - started))
            print(f"  {workers:<8} {rates[0]:9.1f} {rates[1]:16.1f} {rates[0] / rates[1]:20.2f}   (goal <= 1.2 "
                  "with enough workers)")
        started = time.perf_counter()
        attr.compute_attributes(rows, None)
        print(f"  compute_attributes (Trends page button, threads): {n_files / (time.perf_counter() - started):.1f}")


def print_trend_discovery(n_predictions: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        run = make_run(Path(folder) / "ws", n=n_predictions)
        predictions = pd.read_parquet(run / "predictions.parquet")
        attributes = pd.read_parquet(run / "attributes.parquet")
        rng = np.random.default_rng(3)
        tags = pd.DataFrame({"image_id": rng.choice(predictions["image_id"], 3000),
                             "tag": rng.choice(["graveyard", "nature background", "text in image"], 3000)})
        started = time.perf_counter()
        features = image_features(predictions, attributes, tags)
        found = discover(predictions, features, attributes, min_images=3)
        seconds = time.perf_counter() - started
        cells = found.groupby(["true", "pred"]).ngroups
        print(f"trend discovery: {len(predictions):,} images, {cells} off-diagonal cells, {len(found)} tests "
              f"({features.shape[1]} boolean + 4 continuous features): {seconds:.2f} s")


def main(args: argparse.Namespace) -> None:
    sections = set(args.sections.split(","))
    photos = photo_crops(args.images)
    if "per-core" in sections:
        print_per_core("photos", photos)
        print_per_core("smooth noise", smooth_noise(args.images))
    if "faces" in sections:
        print_face_check(args.faces, max(3, args.images // 3))
        pasted, _ = pasted_faces(args.faces)
        print_same_boxes_as_opencv({
            "photos": photos, "smooth noise": smooth_noise(args.images), "faces pasted in": pasted,
            "demo images 64 px": [item.image for item in generate(max(2, args.images // 6))],
            "demo images 128 px": [item.image for item in generate(2, size=128, seed=1)]})
    if "eval" in sections:
        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        print_evaluation(photos, args.eval_images, [int(w) for w in args.workers.split(",")], args.eval_arch,
                         args.eval_size)
    if "trends" in sections:
        print_trend_discovery(args.predictions)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
