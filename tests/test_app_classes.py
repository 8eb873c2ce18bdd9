"""Every dashboard page on a 6-class run: the run's classes (order and display names) everywhere,
none of FI's eight that the run lacks."""
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from emotion_core.labels import FI_CLASSES
from tests.conftest import open_page
from tests.test_app import PAGES
from tests.test_class_sets import SIX, six_run  # noqa: F401  (six_run: the trained+evaluated 6-class run)

ALL_PAGES = PAGES + ["pages/trends.py"]
FI_ONLY = [FI_CLASSES.display_name(n) for n in FI_CLASSES.names if n not in SIX]  # Amusement, Awe, ...


@pytest.fixture
def six_env(six_run, tmp_path, monkeypatch) -> Path:
    """A workspace whose only run is the 6-class one."""
    _, run = six_run
    shutil.copytree(run, tmp_path / "runs" / "six")
    monkeypatch.setenv("EMOLENS_HOME", str(tmp_path))
    return tmp_path


def shown_text(at: AppTest) -> str:
    """Everything a person reads: texts, select box options, tables and the charts' labels."""
    parts = [e.value for kind in ("title", "subheader", "markdown", "caption") for e in getattr(at, kind)]
    parts += [str(option) for box in at.selectbox for option in box.options]
    parts += [frame.value.to_string() for frame in at.dataframe]
    parts += [chart.proto.spec for chart in at.get("plotly_chart")]
    return "\n".join(parts)


@pytest.mark.parametrize("page", ALL_PAGES)
def test_every_page_shows_the_runs_classes_only(six_env, page):
    at = open_page(page)
    if page == "pages/live.py":
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        at.file_uploader[0].set_value(("photo.png", buffer.getvalue(), "image/png")).run()
        assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    text = shown_text(at)
    if page != "pages/agreement.py":  # the agreement page shows a matrix only when some votes are unanimous
        for name in SIX.display:
            assert name in text, (page, name)
    for name in FI_ONLY:
        assert name not in text, (page, name)


@pytest.mark.parametrize("page", ["pages/confusion.py", "pages/trends.py"])
def test_the_cell_select_boxes_list_the_six_classes_in_run_order(six_env, page):
    at = open_page(page)
    box = at.selectbox(key="cell_true")
    assert list(box.options) == list(SIX.display)
    assert at.selectbox(key="cell_pred").value in SIX.names


def test_the_overview_table_names_the_six_classes(six_env):
    at = open_page("pages/overview.py")
    table = at.dataframe[0].value
    assert table["Emotion"].tolist()[:6] == list(SIX.display)
