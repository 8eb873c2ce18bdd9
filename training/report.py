"""One self-contained HTML report of a run (or two) and its Markdown version, for sharing and printing.

  python -m training.report --run workspace/runs/fi-vgg19 --out report.html
  python -m training.report --run workspace/runs/fi-vgg19 --compare workspace/runs/fi-vgg19-weighted --out diff.html

The HTML opens offline (styles inline, images embedded as JPEG thumbnails, no scripts) and prints to
PDF from a browser; report.md beside it holds the same text and tables.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from emotion_core.html_report import build_report, write_report
from training.cli import run_main


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Write a run's whole analysis as one HTML file and a Markdown file.")
    parser.add_argument("--run", required=True, help="evaluated run dir (holds metrics.json and predictions.parquet)")
    parser.add_argument("--compare", default=None, help="a second run dir of the same dataset: adds how it differs")
    parser.add_argument("--split", default=None, help="evaluated split to report (default: test, else the first)")
    parser.add_argument("--out", default="report.html", help="HTML file to write; the .md goes beside it")
    parser.add_argument("--no-tags", dest="tags", action="store_false",
                        help="leave the tag store out of the trend paragraphs (default: read the workspace's tags)")
    return parser


def dataset_tags(run: str) -> pd.DataFrame | None:
    """The tags of the run's dataset from the workspace's tag store (EMOLENS_DB_URL); None when there is
    no usable store (the report then counts the automatic attributes only)."""
    from emotion_core.runs import load_metrics
    from emotion_core.tags import default_url, tags_or_none

    dataset = Path(load_metrics(run).get("dataset", "")).name  # its folder's name, as ui.dataset_key
    return tags_or_none(default_url(), dataset, on_error=lambda err: print(f"note: tags left out ({err})"))


def main(args: argparse.Namespace) -> tuple[Path, Path]:
    tags = dataset_tags(args.run) if args.tags else None
    report = build_report(args.run, split=args.split, compare=args.compare, tags=tags)
    html_path, markdown_path = write_report(report, args.out)
    print(f"wrote {html_path} ({html_path.stat().st_size / 1e6:.1f} MB) and {markdown_path}")
    return html_path, markdown_path


if __name__ == "__main__":
    run_main(main, get_args_parser().parse_args())
