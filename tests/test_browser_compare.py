"""The Compare page in a real browser (Playwright + Debian's Chromium): a shared link opens the comparison,
a click on the difference matrix shows that cell's images, a bucket button its bucket's."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.test_browser import CHROMIUM, chromium_tab, click_cell, script_runs, streamlit_server, wait_until_idle
from tests.test_compare import rewrite_predictions

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                reason="Debian chromium is not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def two_run_workspace(tmp_path_factory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """Runs a and b of one tiny dataset: a right on every class's first test image, b on the second and
    on both amusement images (as tests/test_compare.py's two_runs)."""
    from emotion_core.labels import MIKELS8
    from tests.test_class_sets import small_config, write_images_dataset
    from training.schedule import Stage
    from training.train import train

    root = tmp_path_factory.mktemp("compare_browser")
    dataset = write_images_dataset(root / "dataset", MIKELS8)
    train(small_config(dataset, root / "home" / "runs" / "a"), [Stage("all", ["all"], 1e-3, 1)])
    shutil.copytree(root / "home" / "runs" / "a", root / "home" / "runs" / "b")
    test_a = rewrite_predictions(root / "home" / "runs" / "a", lambda label, i: i == 0)
    test_b = rewrite_predictions(root / "home" / "runs" / "b", lambda label, i: i == 1 or label == "amusement")
    return root / "home", test_a, test_b


@pytest.fixture
def page():
    with chromium_tab() as tab:
        yield tab


def test_clicking_a_difference_cell_and_a_bucket_shows_their_images(two_run_workspace, page):
    home, test_a, test_b = two_run_workspace
    amusement = set(test_a.loc[test_a["label"] == "amusement", "image_id"])
    only_b = set(test_b.loc[test_b["correct"], "image_id"]) - set(test_a.loc[test_a["correct"], "image_id"])
    runs = script_runs(page)
    with streamlit_server(home) as url:
        page.goto(f"{url}/compare?run_a=a&run_b=b&compare_split=test")
        page.get_by_text("Difference matrix (run B − run A)").wait_for()
        wait_until_idle(page)
        page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()  # the matrix is below the tables
        before = len(runs)
        click_cell(page, "Amusement", "Amusement")
        heading = "Amusement → Amusement: run A 1, run B 2 (+1): 1 entered, 0 left, 1 in both"
        page.get_by_role("heading", name=heading).wait_for()
        main = page.get_by_test_id("stMain")
        for image_id in amusement:
            main.get_by_text(image_id, exact=True).wait_for()
        wait_until_idle(page)
        assert len(runs) - before == 1, f"{len(runs) - before} script runs for one click"
        assert "diff_true=amusement" in page.url and "diff_pred=amusement" in page.url and "run_b=b" in page.url
        page.get_by_role("button", name=f"Only B right ({len(only_b)})").click()
        page.get_by_role("heading", name=f"Only B right: {len(only_b)} images").wait_for()
        for image_id in only_b:
            main.get_by_text(image_id, exact=True).wait_for()
        wait_until_idle(page)
        assert "bucket=only_b" in page.url and "diff_true" not in page.url
        assert page.get_by_text("Traceback").count() == 0 and page.get_by_test_id("stException").count() == 0
