"""The shareable report (issue 12, point 3): python -m training.report, HTML + Markdown."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emotion_core.html_report import Report, Table, build_report, reliability_svg, write_report
from training import report as report_cli


def run_report(tmp_path, *args: str) -> tuple[str, str]:
    out = tmp_path / "out" / "report.html"
    report_cli.main(report_cli.get_args_parser().parse_args([*args, "--out", str(out), "--no-tags"]))
    return out.read_text(), out.with_suffix(".md").read_text()


def test_the_report_holds_the_numbers_of_metrics_json(demo_env, tmp_path):
    run = demo_env / "runs" / "demo"
    test = json.loads((run / "metrics.json").read_text())["splits"]["test"]
    page, markdown = run_report(tmp_path, "--run", str(run))
    for text in (page, markdown):
        assert f"{test['accuracy']:.1%}" in text and f"{test['macro_f1']:.1%}" in text
        for entry in test["per_class"]:
            assert f"{entry['recall']:.1%}" in text and f"{entry['precision']:.1%}" in text
        assert f"{test['ecc']:.3f}" in text and f"{test['emc']:.3f}" in text
        assert f"{test['calibration']['ece']:.3f}" in text
        assert f"{test['polarity']['accuracy']:.1%}" in text
        assert "misclassified as" in text  # the trend paragraphs
    counts = np.array(test["confusion_matrix"])
    cells = re.findall(r'<table class="heatmap">.*?</table>', page, flags=re.S)[0]
    assert [int(v) for v in re.findall(r"<td[^>]*style=[^>]*>(-?\d+)</td>", cells)] == counts.ravel().tolist()
    assert page.count("data:image/jpeg;base64,") >= 3  # error thumbnails with their Grad-CAM
    assert "<svg" in page and "<script" not in page


def test_the_report_fetches_nothing(demo_env, tmp_path):
    page, _ = run_report(tmp_path, "--run", str(demo_env / "runs" / "demo"))
    assert not re.search(r"https?://", page)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page)  # every src is a data URL, no links out
    assert not re.search(r"url\((?!data:)", page) and "@import" not in page
    assert len(page) < 3_000_000


def test_a_run_without_cams_still_reports_and_says_so(demo_env, tmp_path):
    home = tmp_path / "workspace"
    shutil.copytree(demo_env / "runs" / "demo", home / "runs" / "demo", ignore=shutil.ignore_patterns("cache"))
    (home / "runs" / "demo" / "cams.npy").unlink()
    page, _ = run_report(tmp_path, "--run", str(home / "runs" / "demo"))
    assert "holds no Grad-CAM maps" in page and "data:image/jpeg;base64," in page


def test_compare_adds_the_difference(demo_env, tmp_path):
    home = tmp_path / "workspace"
    a, b = home / "runs" / "a", home / "runs" / "b"
    shutil.copytree(demo_env / "runs" / "demo", a, ignore=shutil.ignore_patterns("cache"))
    shutil.copytree(a, b)
    predictions = pd.read_parquet(b / "predictions.parquet")
    wrong = predictions.index[(predictions["split"] == "test") & ~predictions["correct"]][:5]
    predictions.loc[wrong, "pred"] = predictions.loc[wrong, "label"]
    predictions.loc[wrong, "pred_idx"] = predictions.loc[wrong, "label_idx"]
    predictions.loc[wrong, "correct"] = True
    predictions.to_parquet(b / "predictions.parquet")
    page, markdown = run_report(tmp_path, "--run", str(a), "--compare", str(b))
    assert "Comparison: A = a, B = b" in markdown
    assert "5 only B" in markdown and "0 images only A got right" in markdown
    assert "+5" in page  # the difference matrix gains on the diagonal
    # the per-class McNemar table with its Benjamini-Hochberg q-values, as the Compare page shows it
    from emotion_core.compare import PER_CLASS_COLUMNS, align, class_table
    from emotion_core.report import format_table
    from emotion_core.labels import run_classes
    from emotion_core.runs import load_predictions

    comparison = align(load_predictions(a), load_predictions(b), classes=run_classes(a), split="test")
    per_class = format_table(class_table(comparison), PER_CLASS_COLUMNS)
    assert "| " + " | ".join(per_class.columns) + " |" in markdown
    for row in per_class.itertuples(index=False):
        assert "| " + " | ".join(row) + " |" in markdown, row
    assert "q-value (Benjamini-Hochberg)" in page and (class_table(comparison)["only_b"] > 0).any()


def test_bad_input_is_one_clear_line(tmp_path):
    with pytest.raises(ValueError, match="not an evaluated run"):
        build_report(tmp_path)


def test_the_files_are_escaped_and_leave_no_temporary_file(tmp_path):
    report = Report("a <b> & c", [Table(pd.DataFrame({"Name": ["<script>x</script>"], "Value": ["1"]}))])
    html_path, markdown_path = write_report(report, tmp_path / "r.html")
    text = html_path.read_text()
    assert "<script>x" not in text and "&lt;script&gt;" in text
    assert markdown_path == tmp_path / "r.md" and "| <script>x</script> | 1 |" in markdown_path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.md"]


def test_a_failed_write_keeps_the_previous_report_whole(tmp_path, monkeypatch):
    """Atomic: a write that fails half-way (a full disk) leaves the previous report as it was and no
    stray temporary file; writing in place would leave half a report."""
    html_path, markdown_path = write_report(Report("old", [Table(pd.DataFrame({"Name": ["before"]}))]),
                                            tmp_path / "r.html")
    before = html_path.read_text(), markdown_path.read_text()

    def half_then_disk_full(path: Path, data: bytes) -> int:
        with open(path, "wb") as file:
            file.write(data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_then_disk_full)
    with pytest.raises(OSError, match="disk full"):
        write_report(Report("new", [Table(pd.DataFrame({"Name": ["after"]}))]), tmp_path / "r.html")
    monkeypatch.undo()
    assert (html_path.read_text(), markdown_path.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html", "r.md"]


def test_reliability_svg_draws_a_bar_per_bin():
    bins = [{"lower": 0.4, "upper": 0.5, "mean_confidence": 0.45, "accuracy": 0.3, "images": 10},
            {"lower": 0.9, "upper": 1.0, "mean_confidence": 0.95, "accuracy": 0.9, "images": 5}]
    svg = reliability_svg(bins)
    assert svg.count('fill="#9bb7d4"') == 2 and "http" not in svg


def test_the_report_opens_in_chromium_without_network(demo_env, tmp_path):
    from tests.test_browser import CHROMIUM, FLAGS

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    run_report(tmp_path, "--run", str(demo_env / "runs" / "demo"))
    out = tmp_path / "out" / "report.html"
    requests = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "data:"))
                   else route.abort())
        page.goto(out.as_uri())
        images = page.eval_on_selector_all("img", "all => all.map(i => i.complete && i.naturalWidth > 0)")
        heading = page.inner_text("h1")
        pdf = page.pdf()
        browser.close()
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    assert images and all(images)  # every thumbnail decodes
    assert heading == "EmoLens report: run demo" and pdf.startswith(b"%PDF")


def test_the_overview_offers_the_report(demo_env):
    from tests.test_app import start

    at = start()
    assert not at.error, [e.value for e in at.error]
    labels = [button.proto.label for button in at.get("download_button")]
    assert "Download the report (HTML)" in labels and "Download the report (Markdown)" in labels


def copy_demo_run(demo_env, tmp_path, name: str = "demo") -> Path:
    run = tmp_path / "workspace" / "runs" / name
    shutil.copytree(demo_env / "runs" / "demo", run, ignore=shutil.ignore_patterns("cache"))
    return run


@pytest.mark.parametrize("damage", ["split_missing", "no_split_column"])
def test_a_run_without_the_splits_predictions_is_one_line_and_exit_2(demo_env, tmp_path, capsys, damage):
    run = copy_demo_run(demo_env, tmp_path)
    predictions = pd.read_parquet(run / "predictions.parquet")
    if damage == "split_missing":  # metrics.json names a test split the predictions no longer hold
        predictions = predictions[predictions["split"] != "test"]
        expected = "has no predictions on split 'test'; it has: "
    else:
        predictions = predictions.drop(columns="split")
        expected = "has no predictions on split 'test'; it has: none"
    predictions.to_parquet(run / "predictions.parquet")
    args = report_cli.get_args_parser().parse_args(["--run", str(run), "--out", str(tmp_path / "r.html"), "--no-tags"])
    with pytest.raises(SystemExit) as exit_info:
        report_cli.run_main(report_cli.main, args)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.count("\n") == 1 and expected in error, error
    assert not (tmp_path / "r.html").exists()
