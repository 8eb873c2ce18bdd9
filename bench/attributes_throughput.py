"""Attribute images/s, per attribute and in total, and trend discovery over all 56
off-diagonal cells of a 22,000-image run.

  python bench/attributes_throughput.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.synthetic_run import make_run  # noqa: E402
from emotion_core import attributes as attr  # noqa: E402
from emotion_core.attributes import compute_attributes  # noqa: E402
from emotion_core.trends import discover, image_features  # noqa: E402

N_IMAGES = 60


def photos(n: int, size=(500, 375)) -> list[Image.Image]:
    """Photo-sized smooth random images (FI images are about 500x375)."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8))
            .resize(size, Image.BICUBIC).filter(ImageFilter.GaussianBlur(2)) for _ in range(n)]


def rate(fn, items) -> float:
    started = time.perf_counter()
    for item in items:
        fn(item)
    return len(items) / (time.perf_counter() - started)


def main() -> None:
    images = photos(N_IMAGES)
    small = []
    for image in images:
        copy = image.copy()
        copy.thumbnail((attr.ANALYSIS_SIDE, attr.ANALYSIS_SIDE))
        small.append(np.ascontiguousarray(np.asarray(copy)))
    cam = np.random.default_rng(1).random((14, 14))
    print(f"{N_IMAGES} images of 500x375, analysed at <= {attr.ANALYSIS_SIDE}px, one thread:")
    per_attribute = {
        "chroma (monochrome)": lambda a: attr.chroma_p95(a),
        "warm tones": lambda a: attr.warm_share(a),
        "brightness + contrast": lambda a: attr.luma(a.astype(np.float64)).std(),
        "colorfulness": lambda a: attr.colorfulness(a),
        "human faces (Haar)": lambda a: attr.count_faces(a, "haarcascade_frontalface_default.xml"),
        "cat faces (Haar)": lambda a: attr.count_faces(a, "haarcascade_frontalcatface.xml"),
        "CAM concentration": lambda a: attr.cam_concentration(cam),
    }
    for name, fn in per_attribute.items():
        print(f"  {name:<24} {rate(fn, small):9.1f} images/s")
    print(f"  {'all, one image at a time':<24} {rate(lambda im: attr.image_attributes(im, cam), images):9.1f} images/s")
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, image in enumerate(images):
            paths.append(str(Path(folder) / f"{i}.jpg"))
            image.save(paths[-1], quality=90)
        table = pd.DataFrame({"image_id": [str(i) for i in range(N_IMAGES)], "path": paths,
                              "cam_index": range(N_IMAGES)})
        cams = np.random.default_rng(2).random((N_IMAGES, 2, 14, 14)).astype(np.float16)
        started = time.perf_counter()
        compute_attributes(table, cams)
        print(f"  {'all, from files, threaded':<24} {N_IMAGES / (time.perf_counter() - started):9.1f} images/s")

        run = make_run(Path(folder) / "ws")
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


if __name__ == "__main__":
    main()
