"""The Embedding map page as a user waits for it: `streamlit run app.py` driven by Playwright in Debian's
Chromium, on a synthetic run of N test predictions (default 118,000, EmoSet's labelled size) with
embeddings.npy ((N, 512) float16, clustered by the true label; row i = the prediction with cam_index i).

  python bench/map_browser.py
  python bench/map_browser.py --points 22000                       # the 20x FI size
  python bench/map_browser.py --workspace /tmp/map --keep          # build once, time again later

Steps, timed in the page's clock as bench/browser_latency.py times them (until the heading, the map's
Plotly chart, the expected images loaded and Streamlit idle, still so after a short settle):
  1. the first visit (a click on the page's link): the map is computed (progress bar shown) and cached;
  2. a later visit with the cached map: back from the Overview (same session; the figure is cached in
     the server) and a new session opening /embedding-map (a reload);
  3. a box dragged over the map (mouse down, 12 moves, up) until the gallery shows the selected images:
     timed from the pointer going down and from it going up; then another box elsewhere (each mouse move
     of a drag restyles every point in the page: at 118,000 points the drag itself is what takes long;
     Chromium runs headless with --disable-gpu, so WebGL is drawn in software);
  4. changing "Colour by" (to correct / incorrect, then agreement level).
The machine's other load counts: run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.browser_latency import CHROMIUM, PAGE_PROBE, Done, Stopwatch, Traffic, add_session_options, \
    browser_session, build_run  # noqa: E402
from bench.embedding_map import labelled_embeddings  # noqa: E402
from emotion_core.embedding_map import AGREEMENT, CORRECTNESS, map_path  # noqa: E402
from emotion_core.fileio import write_npy  # noqa: E402
from emotion_core.runs import EMBEDDINGS_FILE  # noqa: E402

DISTINCT_IMAGES, IMAGE_SIZE = 3_000, (500, 375)  # as bench/browser_latency.py's defaults
PER_PAGE = 12  # the gallery's images a page
HEADING = "Embedding map"
# Noted in the page too: when the pointer went up (a drag ends there) and whether a progress bar was shown.
MAP_PROBE = """
window.__pointerUpAt = null; window.__progressSeen = false;
window.addEventListener('pointerup', () => { window.__pointerUpAt = performance.now(); }, true);
new MutationObserver(() => {
  if (!window.__progressSeen && document.querySelector('[data-testid="stProgress"]')) window.__progressSeen = true;
}).observe(document, {childList: true, subtree: true});
"""


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=118_000,
                        help="test predictions with embeddings, the map's points (default 118000)")
    add_session_options(parser, timeout=900, why=": the first visit computes the map")
    return parser


def add_embeddings(run: Path) -> None:
    """embeddings.npy for the run (kept if its rows already match), row i = the prediction with cam_index i."""
    predictions = pd.read_parquet(run / "predictions.parquet", columns=["label_idx", "cam_index"])
    path = run / EMBEDDINGS_FILE
    if path.exists() and np.load(path, mmap_mode="r").shape[0] == len(predictions):
        return
    labels = np.empty(len(predictions), dtype=np.int64)
    labels[predictions["cam_index"].to_numpy()] = predictions["label_idx"].to_numpy()
    write_npy(path, labelled_embeddings(labels))


def open_url(watch: Stopwatch, name: str, url: str, done: Done) -> dict:
    """From asking for the URL until the page is done (Python's clock: a new page has none yet)."""
    mark = (*watch.traffic.mark()[:4], 0.0)  # the new document's renderer CPU count starts at 0
    started = time.perf_counter()
    watch.page.goto(url)
    ready = watch._wait_until_settled(done)
    ago = watch.page.evaluate("performance.now()") - ready
    return watch._note(name, time.perf_counter() - started - ago / 1000, mark)


def box_corners(page, start: float, end: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """Page pixels of a box over start..end (fractions) of the map's plot area, both ways."""
    area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    return tuple((area["x"] + area["width"] * at, area["y"] + area["height"] * at) for at in (start, end))


def drag_box(page, corners) -> None:
    """Press, drag (12 moves) and release: a real box selection."""
    page.mouse.move(*corners[0])
    page.mouse.down()
    page.mouse.move(*corners[1], steps=12)
    page.mouse.up()


def points_in_box(page, points: pd.DataFrame, corners, margin: float) -> int:
    """The map's points inside the dragged box grown by margin pixels (negative: shrunk), by the plot's
    own pixel-to-data conversion (as tests/test_browser.py checks the box selection)."""
    (x0, y0), (x1, y1) = page.evaluate(
        """([pixels, margin]) => { const plot = document.querySelector('.js-plotly-plot');
             const box = plot.querySelector('.nsewdrag').getBoundingClientRect();
             const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
             return pixels.map(([x, y], i) => [xa.p2d(x - box.left + (i ? margin : -margin)),
                                               ya.p2d(y - box.top + (i ? margin : -margin))]); }""",
        [[list(c) for c in corners], margin])
    inside = points["x"].between(min(x0, x1), max(x0, x1)) & points["y"].between(min(y0, y1), max(y0, y1))
    return int(inside.sum())


def timed_drag(watch: Stopwatch, points: pd.DataFrame, name: str, corners, previous: str | None) -> str:
    """Time a box drag until the gallery shows the boxed images (a heading other than `previous`); print the
    part after the pointer went up. Returns the selection's heading."""
    page = watch.page
    inner = points_in_box(page, points, corners, -3)
    if inner == 0:
        sys.exit("the box would select no point of the map")
    done = Done(HEADING, images=min(inner, PER_PAGE), charts=1, contains=" selected: ", absent=previous)
    figures = watch.step(name, lambda: drag_box(page, corners), done)
    down, up = page.evaluate("[window.__pointerAt, window.__pointerUpAt]")
    print(f"     of which after the pointer went up: {figures['seconds'] - (up - down) / 1000:.3f} s "
          f"(the drag itself took {(up - down) / 1000:.3f} s); "
          f"{inner:,}..{points_in_box(page, points, corners, 3):,} points in the box", flush=True)
    return page.get_by_test_id("stMain").locator("h3", has_text=" selected: ").first.text_content().strip()


def time_map_page(page, url: str, server_pid: int, run: Path, args) -> Stopwatch:
    watch = Stopwatch(page, Traffic(page, server_pid), args.settle, args.timeout)
    map_link, overview_link = (page.get_by_role("link", name=name) for name in ("Embedding map", "Overview"))
    unselected = Done(HEADING, charts=1, contains="No images selected")

    watch.first_page(url, Done("Run big", charts=1))  # per-class bars: plotly.js loaded
    watch.step("1. first visit: map computed and cached", map_link.click, unselected)
    if not page.evaluate("window.__progressSeen"):
        sys.exit("the first visit showed no progress bar: was the map already cached?")
    if not map_path(run, "test").exists():
        sys.exit(f"the first visit wrote no {map_path(run, 'test').name}")
    watch.step("back to the Overview", overview_link.click, Done("Run big", charts=1))
    watch.step("2a. later visit, cached map (same session)", map_link.click, unselected)
    page.evaluate("window.__progressSeen = false")
    open_url(watch, "2b. later visit, cached map (new session)", f"{url}/embedding-map", unselected)
    if page.evaluate("window.__progressSeen"):
        sys.exit("the later visit computed the map again")

    points = pd.read_parquet(map_path(run, "test"))
    heading = None
    for name, fractions in (("3. box drag until the gallery shows the images", (0.15, 0.45)),
                            ("3b. another box drag, elsewhere", (0.55, 0.85))):
        heading = timed_drag(watch, points, name, box_corners(page, *fractions), heading)

    main = page.get_by_test_id("stMain")
    for colour_by, legend in ((CORRECTNESS, "incorrect ("), (AGREEMENT, "unanimous (")):
        watch.step(f"4. Colour by: {colour_by}", lambda: main.get_by_text(colour_by, exact=True).click(),
                   Done(HEADING, charts=1, contains=legend))
    return watch


def main(args: argparse.Namespace) -> None:
    if not os.path.exists(CHROMIUM):
        sys.exit(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    if args.points < 1000:
        sys.exit("--points must be at least 1000 (a box over a smaller map may hold no point)")
    with tempfile.TemporaryDirectory() as scratch:
        workspace = args.workspace or Path(scratch)
        workspace.mkdir(parents=True, exist_ok=True)
        run = build_run(workspace, args.points, DISTINCT_IMAGES, IMAGE_SIZE)
        started = time.perf_counter()
        add_embeddings(run)
        print(f"embeddings ready in {time.perf_counter() - started:.1f} s")
        shutil.rmtree(run / "cache", ignore_errors=True)  # first gallery visits make their thumbnails
        map_path(run, "test").unlink(missing_ok=True)  # the first visit computes the map
        print(f"{args.points:,} points of 512-d float16 embeddings; {os.cpu_count()} CPU cores")
        with browser_session(workspace, args.timeout, PAGE_PROBE + MAP_PROBE) as (page, url, pid):
            watch = time_map_page(page, url, pid, run, args)
        watch.summary()
        if args.workspace and not args.keep:
            shutil.rmtree(args.workspace / "runs" / "big", ignore_errors=True)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
