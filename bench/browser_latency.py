"""Dashboard latency as a user sees it: `streamlit run app.py` driven by Playwright in Debian's
Chromium, on a synthetic run of N predictions over D distinct photo-sized JPEG files
(default 118,000 predictions, EmoSet's labelled size, over 3,000 files of 500x375).

  python bench/browser_latency.py
  python bench/browser_latency.py --predictions 2000 --distinct-images 500 --cells 3   # a quick check
  python bench/browser_latency.py --workspace /tmp/big --keep      # build once, time again later

Each step is timed in the page's clock from the pointer going down (or from the navigation for the
first page) until every condition holds: the expected heading, every image of the main area
loaded (img.complete), the number of images the page should show, the page's Plotly charts drawn
(the first chart of a session loads and evaluates plotly.js, 4.7 MB, after Streamlit is idle: a step
that did not wait for it would hand that cost to the next step), and Streamlit idle
(`[data-testid="stApp"][data-test-script-state="notRunning"]`), still true after a short settle
(a late rerun would restart the clock). Also noted per step, to find where the time goes: when the
server's first and last websocket messages arrived and when Streamlit went idle (after that: drawing
and images), the script runs it caused (new_session messages), websocket and media bytes, and the
CPU seconds of the server process and of the page's renderer.

Steps: the first page after the server starts (Overview); opening the confusion page the first
time; clicking cells (first visit: thumbnails made; then the same cells again); the Grad-CAM toggle
(on: overlays made, off); the next gallery page; opening an image in the inspector from its card;
back to the confusion page. Prints each step, then medians and maxima per step with the goals.
The machine's other load counts: run it on a quiet machine, or repeat and compare medians.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import pandas as pd  # noqa: E402

from emotion_core.confusion import cell_rows, filter_and_sort, page_of  # noqa: E402
from emotion_core.labels import display_name  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
PER_PAGE = 12  # pages/confusion.py shows 12 images a page
GOALS = {"first page after server start": 3.0, "open the confusion page, first time": 1.0,
         "back to the confusion page": 1.0,
         "click a cell, first visit": 0.6, "click a cell, revisit": 0.3, "Grad-CAM toggle on": 0.3,
         "Grad-CAM toggle off": 0.3, "next gallery page": 0.3, "open an image in the inspector": None}

# In the page: when the pointer went down (the clock starts), when each websocket message arrived, and
# when Streamlit last became idle.
PAGE_PROBE = """
window.__pointerAt = null; window.__readyAt = null; window.__idleAt = null; window.__messages = [];
window.addEventListener('pointerdown', () => { window.__pointerAt = performance.now(); }, true);
const PageSocket = window.WebSocket;  // note when each message from the server arrives
window.WebSocket = function (...args) {
  const socket = new PageSocket(...args);
  socket.addEventListener('message', () => window.__messages.push(performance.now()));
  return socket;
};
Object.assign(window.WebSocket, PageSocket);
window.WebSocket.prototype = PageSocket.prototype;
new MutationObserver(() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (app && !app.__watched) {
    app.__watched = true;
    new MutationObserver(() => {
      if (app.getAttribute('data-test-script-state') === 'notRunning') window.__idleAt = performance.now();
    }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  }
}).observe(document, {childList: true, subtree: true});
"""
# True (and the first time noted) when the page is done: a heading that starts as expected, the main
# area's text holding / not holding what it should, at least `images` images there, all loaded, at
# least `charts` Plotly charts drawn, and Streamlit idle.
READY = """(done) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main) return false;
  const headings = [...main.querySelectorAll('h1, h2, h3')].map(h => h.textContent.trim());
  if (!headings.some(h => h.startsWith(done.heading))) return false;
  const text = main.textContent;  // not innerText: polled every frame, it must not force a layout
  if (done.contains && !text.includes(done.contains)) return false;
  if (done.absent && text.includes(done.absent)) return false;
  const shown = [...main.querySelectorAll('img')];
  if (shown.length < done.images || !shown.every(img => img.complete && img.naturalWidth > 0)) return false;
  const drawn = [...main.querySelectorAll('.js-plotly-plot')].filter(plot => plot.querySelector('.main-svg'));
  if (drawn.length < done.charts) return false;
  if (window.__readyAt === null) window.__readyAt = performance.now();
  return true;
}"""


@dataclass(frozen=True)
class Done:
    """What the page shows when a step is done."""
    heading: str
    images: int = 0
    charts: int = 0
    contains: str | None = None
    absent: str | None = None


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=int, default=118_000,
                        help="predictions in the synthetic run (default 118000, EmoSet's labelled size)")
    parser.add_argument("--distinct-images", type=int, default=3_000,
                        help="distinct image files the predictions point at (default 3000)")
    parser.add_argument("--image-size", default="500x375", help="WIDTHxHEIGHT of every image file (default 500x375)")
    parser.add_argument("--cells", type=int, default=6, help="confusion cells clicked, then revisited (default 6)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="times the toggle, next-page and inspector steps are timed (default 3)")
    add_session_options(parser, timeout=120)
    return parser


def add_session_options(parser: argparse.ArgumentParser, timeout: float, why: str = "") -> None:
    """The workspace and step-timing options every browser benchmark takes."""
    parser.add_argument("--workspace", type=Path, default=None,
                        help="workspace folder to build the run in (reused if it already holds it); "
                             "default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the workspace (with --workspace)")
    parser.add_argument("--settle", type=float, default=0.4,
                        help="seconds a step must stay done before it counts as done (default 0.4)")
    parser.add_argument("--timeout", type=float, default=timeout,
                        help=f"seconds one step may take (default {timeout:g}{why})")


@contextmanager
def browser_session(workspace: Path, timeout: float, probe: str):
    """A dashboard server on the workspace and one Chromium tab with the probe script: (page, url, server pid)."""
    from playwright.sync_api import sync_playwright  # only when a benchmark runs: --help works without it

    with streamlit_server(workspace) as (url, health_seconds, pid), sync_playwright() as playwright:
        print(f"server answered its health check {health_seconds:.1f} s after start")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.add_init_script(probe)
        page.set_default_timeout(timeout * 1000)
        yield page, url, pid
        browser.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def streamlit_server(workspace: Path):
    """A freshly started `streamlit run app.py` (as tests/test_browser.py starts it); yields (url,
    seconds until its health check answered, process id)."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"], cwd=ROOT, env={**os.environ, "EMOLENS_HOME": str(workspace)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.25)
        else:
            sys.exit("the streamlit server did not answer its health check within 60 s")
        yield url, time.perf_counter() - started, process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)


def build_run(workspace: Path, n: int, distinct: int, size: tuple[int, int]) -> Path:
    from bench.synthetic_run import make_run

    run = workspace / "runs" / "big"
    if (run / "metrics.json").exists():
        table = pd.read_parquet(run / "predictions.parquet", columns=["path"])
        if len(table) == n and table["path"].nunique() == distinct:
            print(f"reusing the run in {run}")
            return run
        sys.exit(f"{run} holds another run ({len(table)} predictions); use another --workspace")
    started = time.perf_counter()
    run = make_run(workspace, n=n, distinct_images=distinct, image_size=size)
    print(f"built the run in {time.perf_counter() - started:.1f} s")
    return run


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Traffic:
    """What the server sent (script runs = new_session messages, websocket bytes, media fetched) and the
    CPU time the server and the page's renderer spent."""

    def __init__(self, page, server_pid: int):
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._message, self.server_pid = ForwardMsg, server_pid
        self._cdp = page.context.new_cdp_session(page)
        self._cdp.send("Performance.enable")
        self.runs = self.socket_bytes = 0
        self.media: list = []
        page.on("websocket", self._watch)
        page.on("response", lambda response: self.media.append(response) if "/media/" in response.url
                and "/static/" not in response.url else None)  # not the fonts under static/media

    def _watch(self, socket) -> None:
        socket.on("framereceived", self._frame)

    def _frame(self, payload) -> None:
        if isinstance(payload, (bytes, bytearray)):
            self.socket_bytes += len(payload)
            try:
                if self._message.FromString(bytes(payload)).WhichOneof("type") == "new_session":
                    self.runs += 1
            except Exception:  # noqa: BLE001 - a frame that is not a ForwardMsg is just counted in bytes
                pass

    def _page_cpu(self) -> float:
        metrics = self._cdp.send("Performance.getMetrics")["metrics"]
        return next(m["value"] for m in metrics if m["name"] == "TaskDuration")

    def mark(self) -> tuple:
        return self.runs, self.socket_bytes, len(self.media), cpu_seconds(self.server_pid), self._page_cpu()

    def since(self, mark: tuple) -> dict:
        media = self.media[mark[2]:]
        media_bytes = sum(int(r.headers.get("content-length", 0) or 0) for r in media)
        return {"runs": self.runs - mark[0], "socket_kb": (self.socket_bytes - mark[1]) / 1024,
                "media": len(media), "media_kb": media_bytes / 1024,
                "server_cpu": cpu_seconds(self.server_pid) - mark[3], "page_cpu": self._page_cpu() - mark[4]}


class Stopwatch:
    """Times steps in the page and keeps the figures per step name."""

    def __init__(self, page, traffic: Traffic, settle: float, timeout: float):
        self.page, self.traffic, self.settle, self.timeout = page, traffic, settle, timeout
        self.figures: dict[str, list[dict]] = defaultdict(list)

    def step(self, name: str, act, done: Done) -> dict:
        """Do `act` (a click), wait until the page is done, note seconds and traffic."""
        self.page.evaluate("window.__pointerAt = null")
        mark = self.traffic.mark()
        act()
        ready = self._wait_until_settled(done)
        pointer, idle, messages = self.page.evaluate("[window.__pointerAt, window.__idleAt, window.__messages]")
        if pointer is None:
            sys.exit(f"{name}: the click never reached the page")
        after = [(t - pointer) / 1000 for t in messages if pointer < t <= ready]
        return self._note(name, (ready - pointer) / 1000, mark, idle=(idle - pointer) / 1000 if idle else None,
                          first=after[0] if after else None, last=after[-1] if after else None)

    def first_page(self, url: str, done: Done) -> dict:
        """From asking for the URL until the page is done (Python's clock: the page has none yet)."""
        mark = self.traffic.mark()
        started = time.perf_counter()
        self.page.goto(url)
        ready = self._wait_until_settled(done)
        ago = self.page.evaluate("performance.now()") - ready
        return self._note("first page after server start", time.perf_counter() - started - ago / 1000, mark)

    def _wait_until_settled(self, done: Done) -> float:
        """The page time at which it became ready and stayed so, with no new script run, for `settle` s."""
        while True:
            self.page.evaluate("window.__readyAt = null")
            self.page.wait_for_function(READY, arg=asdict(done), polling="raf", timeout=self.timeout * 1000)
            ready, runs = self.page.evaluate("window.__readyAt"), self.traffic.runs
            self.page.wait_for_timeout(self.settle * 1000)
            if self.traffic.runs == runs and self.page.evaluate(READY, asdict(done)):
                return ready

    def _note(self, name: str, seconds: float, mark, **moments: float | None) -> dict:
        figures = {"seconds": seconds, **moments, **self.traffic.since(mark)}
        self.figures[name].append(figures)
        times = ", ".join(f"{what} {at:.3f}" for what, at in moments.items() if at is not None)
        print(f"  {name}: {seconds:.3f} s ({times or 'no click'}), {figures['runs']} script run(s), "
              f"{figures['socket_kb']:.0f} kB websocket, {figures['media']} media files "
              f"({figures['media_kb']:.0f} kB); CPU s: server {figures['server_cpu']:.2f}, "
              f"page {figures['page_cpu']:.2f} (both include the {self.settle} s settle)", flush=True)
        return figures

    def summary(self) -> None:
        print("\nstep                              median     max   n  1st msg last msg   idle  runs  media kB"
              "  server CPU  page CPU  goal")
        for name, rows in self.figures.items():
            seconds = [r["seconds"] for r in rows]
            goal = GOALS.get(name)
            print(f"{name:<32} {statistics.median(seconds):7.3f} s {max(seconds):6.3f} s {len(rows):3d} "
                  f"{self._median(rows, 'first')} {self._median(rows, 'last')} {self._median(rows, 'idle')} "
                  f"{statistics.median(r['runs'] for r in rows):5.1f} "
                  f"{statistics.median(r['media_kb'] for r in rows):9.0f} "
                  f"{statistics.median(r['server_cpu'] for r in rows):9.2f} s "
                  f"{statistics.median(r['page_cpu'] for r in rows):7.2f} s  "
                  f"{'≤ %.1f s' % goal if goal else '—'}")
        print("(medians per step, in seconds from the click: 1st msg / last msg = the server's first and last websocket\n"
              " message, idle = Streamlit idle; after that, drawing and images. CPU seconds include the settle wait;\n"
              " runs = script runs the step caused)")

    @staticmethod
    def _median(rows: list[dict], key: str) -> str:
        values = [r[key] for r in rows if r.get(key) is not None]
        return f"{statistics.median(values):7.3f}" if values else "      —"


def cell_heading(true: str, pred: str) -> str:
    return f"{display_name(true)} → {display_name(pred)}: "


def click_cell(page, true: str, pred: str) -> None:
    """Click the middle of a matrix cell, located from the plot's axis labels (as tests/test_browser.py)."""
    plot = page.locator(".js-plotly-plot").first
    x_tick = plot.locator(".xtick text", has_text=display_name(pred)).first.bounding_box()
    y_tick = plot.locator(".ytick text", has_text=display_name(true)).first.bounding_box()
    page.mouse.click(x_tick["x"] + x_tick["width"] / 2, y_tick["y"] + y_tick["height"] / 2)


def cells_to_click(predictions: pd.DataFrame, count: int) -> tuple[tuple[str, str], list[tuple[str, str]]]:
    """The cell the page opens on (the largest confusion) and `count` other confusions, largest first."""
    sizes = predictions[predictions["label"] != predictions["pred"]].groupby(["label", "pred"]).size()
    ordered = [(str(t), str(p)) for t, p in sizes.sort_values(ascending=False, kind="stable").index]
    return ordered[0], ordered[1:count + 1]


def gallery_pages(predictions: pd.DataFrame, cell: tuple[str, str]) -> list[list[str]]:
    """The image ids of the cell's first two gallery pages, in the gallery's default order."""
    rows = filter_and_sort(cell_rows(predictions, *cell))
    return [page_of(rows, page, PER_PAGE)["image_id"].tolist() for page in (1, 2)]


def time_dashboard(page, url: str, server_pid: int, predictions: pd.DataFrame, overview_charts: int,
                   args) -> Stopwatch:
    watch = Stopwatch(page, Traffic(page, server_pid), args.settle, args.timeout)
    first, others = cells_to_click(predictions, args.cells)
    pages = {cell: gallery_pages(predictions, cell) for cell in [first, *others]}
    main = page.get_by_test_id("stMain")
    confusion_link = page.get_by_role("link", name="Confusion matrix")

    def cell_done(cell: tuple[str, str]) -> Done:  # the matrix, the cell's heading and its first page of images
        return Done(cell_heading(*cell), len(pages[cell][0]), charts=1, contains=pages[cell][0][0])

    print("first page and the confusion page")
    watch.first_page(url, Done("Run big", charts=overview_charts))
    watch.step("open the confusion page, first time", confusion_link.click, cell_done(first))

    print(f"click {len(others)} cells, then the same cells again")
    for visit in ("first visit", "revisit"):
        for cell in others:
            watch.step(f"click a cell, {visit}", lambda: click_cell(page, *cell), cell_done(cell))

    print("Grad-CAM toggle, next page, inspector")
    for cell in others[:args.repeats]:
        watch.step("click a cell, revisit", lambda: click_cell(page, *cell), cell_done(cell))
        toggle = main.get_by_text("Show Grad-CAM")
        cam_caption = f"CAM {display_name(cell[1])}"
        watch.step("Grad-CAM toggle on", toggle.click, replace(cell_done(cell), contains=cam_caption))
        watch.step("Grad-CAM toggle off", toggle.click, replace(cell_done(cell), absent=cam_caption))
        if pages[cell][1]:
            watch.step("next gallery page", main.get_by_test_id("stNumberInputStepUp").first.click,
                       Done(cell_heading(*cell), len(pages[cell][1]), charts=1, contains=pages[cell][1][0],
                            absent=pages[cell][0][0]))
        shown_first = pages[cell][1][0] if pages[cell][1] else pages[cell][0][0]
        watch.step("open an image in the inspector", main.get_by_text("Inspect", exact=True).first.click,
                   Done(f"{shown_first}:", 2, charts=1))  # the image, its CAM, the probabilities
        watch.step("back to the confusion page", confusion_link.click, cell_done(cell))
    return watch


def main(args: argparse.Namespace) -> None:
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    if not os.path.exists(CHROMIUM):
        sys.exit(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as scratch:
        workspace = args.workspace or Path(scratch)
        workspace.mkdir(parents=True, exist_ok=True)
        run = build_run(workspace, args.predictions, args.distinct_images, (width, height))
        shutil.rmtree(run / "cache", ignore_errors=True)  # first visits make their thumbnails
        predictions = pd.read_parquet(run / "predictions.parquet")
        print(f"{len(predictions):,} predictions over {predictions['path'].nunique():,} distinct {width}x{height} "
              f"JPEG files; {os.cpu_count()} CPU cores")
        with browser_session(workspace, args.timeout, PAGE_PROBE) as (page, url, pid):
            overview_charts = 1 + (run / "history.csv").exists()  # per-class bars (and learning curves)
            watch = time_dashboard(page, url, pid, predictions, overview_charts, args)
        watch.summary()
        if args.workspace and not args.keep:
            shutil.rmtree(args.workspace / "runs" / "big", ignore_errors=True)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
