"""Dashboard latency on a synthetic run of 22,000 predictions (20x the FI test set).

  python bench/dashboard_latency.py

Prints: selecting a cell and assembling its gallery data (goal < 50 ms), and a full rerun of
the confusion-matrix page with AppTest once caches are warm (goal < 1 s).
"""
from __future__ import annotations

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
from emotion_core.confusion import cell_rows, cell_summary, filter_and_sort, page_of, summary_sentence  # noqa: E402
from emotion_core.votes import AGREEMENT_LEVELS  # noqa: E402


def gallery_data(predictions: pd.DataFrame, true: str, pred: str) -> pd.DataFrame:
    rows = cell_rows(predictions, true, pred)
    summary_sentence(true, pred, cell_summary(rows))
    shown = filter_and_sort(rows, levels=list(AGREEMENT_LEVELS), confidence=(0.0, 1.0))
    return page_of(shown, 1, 12)


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        os.environ["EMOLENS_HOME"] = home
        run = make_run(Path(home))
        predictions = pd.read_parquet(run / "predictions.parquet")
        cells = [("anger", "sadness"), ("sadness", "contentment"), ("fear", "awe"), ("awe", "awe")]
        timings = []
        for _ in range(10):
            for true, pred in cells:
                started = time.perf_counter()
                gallery_data(predictions, true, pred)
                timings.append(time.perf_counter() - started)
        print(f"{len(predictions):,} predictions")
        print(f"select a cell + gallery data: median {statistics.median(timings) * 1000:6.1f} ms, "
              f"max {max(timings) * 1000:6.1f} ms   (goal < 50 ms)")

        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
        at.switch_page("pages/confusion.py").run()  # first visit: caches fill, thumbnails are made
        reruns = []
        for true, pred in cells * 2:
            at.selectbox(key="cell_true").set_value(true)
            at.selectbox(key="cell_pred").set_value(pred).run()  # warm the cell's thumbnails
            started = time.perf_counter()
            at.run()
            reruns.append(time.perf_counter() - started)
            assert not at.exception, at.exception
            assert at.subheader[0].value.startswith(f"{true.capitalize()} → {pred.capitalize()}: ")
            assert len([m for m in at.markdown if m.value.startswith("**img")]) == 12  # a full gallery page
        print(f"confusion page rerun (AppTest, warm): median {statistics.median(reruns):5.2f} s, "
              f"max {max(reruns):5.2f} s   (goal < 1 s)")


if __name__ == "__main__":
    main()
