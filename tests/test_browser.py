"""Real-browser tests: the dashboard served by `streamlit run`, driven by Playwright in
Debian's Chromium (never a downloaded browser)."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                reason="Debian chromium is not installed (apt-get install -y chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(workspace: Path):
    """A freshly started `streamlit run app.py` on a free local port; yields its URL."""
    port = free_port()
    env = {**os.environ, "EMOLENS_HOME": str(workspace)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(demo_workspace):
    with streamlit_server(demo_workspace) as url:
        yield url


@contextlib.contextmanager
def chromium_tab():
    """A tab of Debian's Chromium, 1400x1600, with a 60 s default timeout."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1600})
        tab.set_default_timeout(60_000)
        yield tab
        browser.close()


@pytest.fixture
def page(server):
    with chromium_tab() as tab:
        yield tab


def click_cell(page, true_name: str, pred_name: str) -> None:
    """Click the middle of a matrix cell, located from the plot's axis labels."""
    plot = page.locator(".js-plotly-plot").first
    plot.wait_for()
    x_tick = plot.locator(".xtick text", has_text=pred_name).first.bounding_box()
    y_tick = plot.locator(".ytick text", has_text=true_name).first.bounding_box()
    page.mouse.click(x_tick["x"] + x_tick["width"] / 2, y_tick["y"] + y_tick["height"] / 2)


def test_clicking_an_off_diagonal_cell_shows_its_images(server, page, demo_workspace):
    predictions = pd.read_parquet(demo_workspace / "runs" / "demo" / "predictions.parquet")
    test = predictions[(predictions["split"] == "test") & ~predictions["correct"]]
    true, pred = test.groupby(["label", "pred"]).size().sort_values().index[-1]
    cell = test[(test["label"] == true) & (test["pred"] == pred)]
    page.goto(server)
    page.get_by_text("Per-class results").wait_for()
    page.get_by_role("link", name="Confusion matrix").click()
    page.get_by_text("Predicted class").wait_for()
    click_cell(page, true.capitalize(), pred.capitalize())
    heading = f"{true.capitalize()} → {pred.capitalize()}: {len(cell)} image"
    page.get_by_role("heading", name=heading).wait_for()
    body = page.locator("section.main, [data-testid='stMain']").first
    for image_id in cell["image_id"].head(4):
        body.get_by_text(image_id, exact=True).wait_for()
    assert body.get_by_text("votes ").count() >= min(len(cell), 12)
    page.get_by_text("Show Grad-CAM").click()
    page.get_by_text(f"CAM {pred.capitalize()}").first.wait_for()
    page.get_by_text(f"CAM {true.capitalize()}").first.wait_for()
    assert f"true={true}" in page.url and f"pred={pred}" in page.url


def script_runs(page) -> list[float]:
    """A list that grows by one for every script run the server starts for this page (its
    new_session messages on the websocket); attach before the page is opened."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    runs: list[float] = []

    def frame(payload) -> None:
        if isinstance(payload, (bytes, bytearray)) and \
                ForwardMsg.FromString(bytes(payload)).WhichOneof("type") == "new_session":
            runs.append(time.monotonic())

    page.on("websocket", lambda socket: socket.on("framereceived", frame))
    return runs


def wait_until_idle(page, settle_ms: int = 1500) -> None:
    """Streamlit idle, and still idle `settle_ms` later (a second run would have started by then)."""
    idle = "[data-testid='stApp'][data-test-script-state='notRunning']"
    page.locator(idle).wait_for()
    page.wait_for_timeout(settle_ms)
    page.locator(idle).wait_for()


def largest_test_confusion(demo_workspace) -> tuple[str, str, pd.DataFrame]:
    predictions = pd.read_parquet(demo_workspace / "runs" / "demo" / "predictions.parquet")
    test = predictions[(predictions["split"] == "test") & ~predictions["correct"]]
    true, pred = test.groupby(["label", "pred"]).size().sort_values().index[-1]
    return true, pred, test[(test["label"] == true) & (test["pred"] == pred)]


def test_a_click_costs_one_script_run_and_inspect_opens_that_image(server, page, demo_workspace):
    from emotion_core.confusion import filter_and_sort

    runs = script_runs(page)
    true, pred, cell = largest_test_confusion(demo_workspace)
    page.goto(f"{server}/confusion?run=demo&split=test&true=anger&pred=awe")  # another cell first
    page.get_by_text("Predicted class").wait_for()
    wait_until_idle(page)
    before = len(runs)
    click_cell(page, true.capitalize(), pred.capitalize())
    page.get_by_role("heading", name=f"{true.capitalize()} → {pred.capitalize()}: {len(cell)} image").wait_for()
    wait_until_idle(page)
    assert len(runs) - before == 1, f"{len(runs) - before} script runs for one click"
    first = filter_and_sort(cell)["image_id"].iloc[0]  # the gallery's first card
    before = len(runs)
    page.get_by_test_id("stMain").get_by_text("Inspect", exact=True).first.click()
    page.get_by_role("heading", name=f"{first}: ").wait_for()
    wait_until_idle(page)
    assert len(runs) - before == 1 and f"image={first}" in page.url
    assert page.get_by_text(f"in the selected cell ({true.capitalize()} → {pred.capitalize()})").count() == 1


def test_upload_on_the_live_page_shows_probabilities(server, page, tmp_path):
    image_path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(image_path)
    page.goto(f"{server}/live")
    page.locator("input[type='file']").set_input_files(str(image_path))
    page.get_by_text("Predicted:").wait_for()
    page.get_by_text("Grad-CAM for class").wait_for()
    assert page.get_by_text("Traceback").count() == 0


def test_a_deep_link_as_the_first_request_gets_the_full_app(demo_workspace, page):
    """A shared link opened on a server nobody has visited yet: the titled navigation, the
    wide layout and the linked cell, as when the root page is opened first."""
    predictions = pd.read_parquet(demo_workspace / "runs" / "demo" / "predictions.parquet")
    test = predictions[(predictions["split"] == "test") & ~predictions["correct"]]
    true, pred = test.groupby(["label", "pred"]).size().sort_values().index[-1]
    count = len(test[(test["label"] == true) & (test["pred"] == pred)])
    with streamlit_server(demo_workspace) as url:
        page.goto(f"{url}/confusion?run=demo&split=test&true={true}&pred={pred}")
        page.get_by_role("heading", name=f"{true.capitalize()} → {pred.capitalize()}: {count} image").wait_for()
        navigation = page.get_by_test_id("stSidebarNav")
        navigation.get_by_text("Confusion matrix", exact=True).wait_for()
        assert navigation.get_by_text("app", exact=True).count() == 0
        assert navigation.get_by_text("confusion", exact=True).count() == 0
        main_width = page.get_by_test_id("stMainBlockContainer").bounding_box()["width"]
        assert main_width > 900, f"narrow layout ({main_width:.0f} px wide in a 1400 px window)"
        page.get_by_role("link", name="Overview").click()
        page.get_by_text("Per-class results").wait_for()
        assert page.get_by_text("Traceback").count() == 0


def test_an_error_in_a_fragment_rerun_is_one_line_not_a_traceback(demo_workspace, page, tmp_path):
    """The Grad-CAM toggle reruns the gallery fragment alone, outside run_app's guard: the fragment
    guards itself. Here the run's CAM file is damaged while the page is open."""
    home = tmp_path / "workspace"
    shutil.copytree(demo_workspace / "runs" / "demo", home / "runs" / "demo", ignore=shutil.ignore_patterns("cache"))
    true, pred, cell = largest_test_confusion(demo_workspace)
    heading = f"{true.capitalize()} → {pred.capitalize()}: {len(cell)} image"
    with streamlit_server(home) as url:
        page.goto(f"{url}/confusion?run=demo&split=test&true={true}&pred={pred}")
        page.get_by_role("heading", name=heading).wait_for()
        wait_until_idle(page)
        (home / "runs" / "demo" / "cams.npy").write_bytes(b"not a numpy file")
        page.get_by_text("Show Grad-CAM").click()
        message = page.get_by_text("This page hit an unexpected error (ValueError: ")
        message.or_(page.get_by_test_id("stException")).first.wait_for()
        wait_until_idle(page)
        assert page.get_by_test_id("stException").count() == 0
        assert message.count() == 1
        assert page.get_by_text("Traceback").count() == 0
        page.get_by_role("heading", name=heading).wait_for()  # the matrix and the cell's heading stay


def test_a_box_drawn_on_the_embedding_map_shows_the_boxed_images(tmp_path):
    """A real box selection (mouse down, drag, up) on the map's WebGL scatter: the gallery below shows
    the images inside the box, found from the map file and the plot's own pixel-to-data conversion."""
    from bench.synthetic_run import make_run
    from emotion_core.embedding_map import map_path, split_map
    from emotion_core.fileio import write_npy

    run = make_run(tmp_path, n=90, distinct_images=6, image_size=(40, 30))
    labels = pd.read_parquet(run / "predictions.parquet")["label_idx"].to_numpy()
    rng = np.random.default_rng(0)
    write_npy(run / "embeddings.npy", (rng.normal(0, 1, (8, 32))[labels] + rng.normal(0, 0.3, (90, 32)))
              .astype(np.float16))
    points = split_map(run, "test")  # what the page will read (it computes the same map when it is missing)
    with streamlit_server(tmp_path) as url, chromium_tab() as page:  # not the demo's server: a run of its own
        page.goto(url)
        page.get_by_text("Per-class results").wait_for()
        page.get_by_role("link", name="Embedding map").click()
        page.get_by_text("No images selected").wait_for()
        wait_until_idle(page)
        drag = page.locator(".js-plotly-plot .nsewdrag").first
        area = drag.bounding_box()
        start = (area["x"] + area["width"] * 0.15, area["y"] + area["height"] * 0.15)
        end = (area["x"] + area["width"] * 0.6, area["y"] + area["height"] * 0.6)
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(*end, steps=12)
        page.mouse.up()
        heading = page.get_by_role("heading", name="images selected").or_(
            page.get_by_role("heading", name="image selected"))
        heading.first.wait_for()
        wait_until_idle(page)
        selected = int(heading.first.inner_text().split(" ")[0].replace(",", ""))

        def boxed(margin: float) -> set[str]:
            """The map's points inside the dragged box grown by margin pixels (negative: shrunk)."""
            corners = page.evaluate(
                """([pixels, margin]) => { const plot = document.querySelector('.js-plotly-plot');
                     const box = plot.querySelector('.nsewdrag').getBoundingClientRect();
                     const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
                     return pixels.map(([x, y], i) => [xa.p2d(x - box.left + (i ? margin : -margin)),
                                                       ya.p2d(y - box.top + (i ? margin : -margin))]); }""",
                [[list(start), list(end)], margin])
            (x0, y0), (x1, y1) = corners
            inside = points["x"].between(min(x0, x1), max(x0, x1)) & points["y"].between(min(y0, y1), max(y0, y1))
            return set(points.loc[inside, "image_id"])

        inner, outer = boxed(-3), boxed(3)
        assert 0 < len(inner) <= selected <= len(outer)
        shown = [t for t in page.get_by_test_id("stMain").locator("strong").all_inner_texts() if t.startswith("img")]
        assert shown and set(shown) <= outer and len(shown) == min(selected, 12)
        assert map_path(run, "test").exists()
