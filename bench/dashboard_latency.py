"""Dashboard latency on a synthetic run (22,000 predictions by default, 20x the FI test set),
every prediction with an image file of its own (FI-sized JPEGs by default).

  python bench/dashboard_latency.py
  python bench/dashboard_latency.py --predictions 2000 --switches 4     # a quick check

Prints:
  - selecting a cell and assembling its gallery data (pandas only; goal < 50 ms);
  - switching the confusion page (AppTest, server side, caches warm) to a different cell whose
    images were never shown before, so its thumbnails are made on the way (goal < 1 s), and
    switching back to a cell seen before (thumbnails on disk).
This measures the server's script run only (AppTest); what a user waits for in Chromium, from the
click to the last thumbnail, is bench/browser_latency.py.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import pandas as pd  # noqa: E402

from bench.synthetic_run import make_run  # noqa: E402
from emotion_core.confusion import (  # noqa: E402
    cell_rows,
    cell_summary,
    filter_and_sort,
    largest_confusion,
    page_of,
    summary_sentence,
)
from emotion_core.labels import display_name  # noqa: E402

PER_PAGE = 12  # pages/confusion.py shows 12 images a page


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=int, default=22_000, help="predictions in the run (default 22000)")
    parser.add_argument("--switches", type=lambda v: max(2, int(v)), default=8,
                        help="timed switches to cells never shown before (default 8, at least 2: the warm pass switches between them)")
    parser.add_argument("--image-size", default="500x375",
                        help="WIDTHxHEIGHT of every image file (default 500x375, like FI's photos)")
    parser.add_argument("--show-cams", action="store_true",
                        help="switch with Grad-CAM overlays on (two overlays per image instead of a thumbnail)")
    return parser


def gallery_data(predictions: pd.DataFrame, true: str, pred: str) -> pd.DataFrame:
    rows = cell_rows(predictions, true, pred)
    summary_sentence(true, pred, cell_summary(rows))
    return page_of(filter_and_sort(rows, confidence=(0.0, 1.0)), 1, PER_PAGE)


def cells_by_size(predictions: pd.DataFrame) -> list[tuple[str, str]]:
    """Confusions (off-diagonal cells, what people click) largest first, then the diagonal."""
    counts = predictions.groupby(["label", "pred"]).size().sort_values(ascending=False, kind="stable")
    cells = [(str(t), str(p)) for t, p in counts.index]
    return [c for c in cells if c[0] != c[1]] + [c for c in cells if c[0] == c[1]]


def time_pandas(predictions: pd.DataFrame, cells: list[tuple[str, str]]) -> list[float]:
    timings = []
    for _ in range(5):
        for true, pred in cells:  # consecutive cells differ
            started = time.perf_counter()
            gallery_data(predictions, true, pred)
            timings.append(time.perf_counter() - started)
    return timings


def switch(at, true: str, pred: str, expected_images: int) -> float:
    """Seconds for the rerun that shows a different cell (both select boxes changed at once)."""
    at.selectbox(key="cell_true").set_value(true)
    at.selectbox(key="cell_pred").set_value(pred)
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    assert not at.exception, at.exception
    assert at.subheader[0].value.startswith(f"{display_name(true)} → {display_name(pred)}: "), at.subheader[0].value
    shown = [m for m in at.markdown if m.value.startswith("**img")]
    assert len(shown) == expected_images, (len(shown), expected_images)
    return seconds


def report(name: str, timings: list[float], goal: str) -> None:
    print(f"{name}: median {statistics.median(timings) * 1000:7.1f} ms, max {max(timings) * 1000:7.1f} ms, "
          f"n={len(timings)}   (goal {goal})")


def main(args: argparse.Namespace) -> None:
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    with tempfile.TemporaryDirectory() as home:
        os.environ["EMOLENS_HOME"] = home
        started = time.perf_counter()
        run = make_run(Path(home), n=args.predictions, distinct_images=None, image_size=(width, height))
        predictions = pd.read_parquet(run / "predictions.parquet")
        print(f"{len(predictions):,} predictions, {predictions['path'].nunique():,} distinct {width}x{height} "
              f"image files (made in {time.perf_counter() - started:.1f} s)")
        cells = cells_by_size(predictions)
        report("select a cell + gallery data (pandas)", time_pandas(predictions, cells[:8]), "< 50 ms")

        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        at.switch_page("pages/confusion.py").run()  # first visit (the largest confusion): the cached tables fill
        if args.show_cams:
            at.toggle(key="show_cams").set_value(True).run()
        fresh = [c for c in cells if c != largest_confusion(predictions)][:args.switches]
        if len(fresh) < args.switches:
            sys.exit(f"only {len(fresh)} other cells to switch to; use fewer --switches")
        size = predictions.groupby(["label", "pred"]).size()
        cold = [switch(at, t, p, min(PER_PAGE, int(size[(t, p)]))) for t, p in fresh]
        warm = [switch(at, t, p, min(PER_PAGE, int(size[(t, p)]))) for t, p in fresh]
        what = "Grad-CAM overlays" if args.show_cams else "thumbnails"
        report(f"switch to a new cell ({what} made on the way)", cold, "< 1 s")
        report(f"switch to a cell seen before ({what} on disk)", warm, "< 1 s")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
