"""Evaluate a run's checkpoint: predictions.parquet, cams.npy, attributes.parquet and metrics.json in the run dir.

  python -m training.evaluate --run workspace/runs/fi-vgg19 --dataset workspace/datasets/fi --split test
"""
from __future__ import annotations

import argparse

import torch

from emotion_core.emotion_metrics import split_emotion_metrics, summary_text
from emotion_core.evaluation import evaluate_run
from emotion_core.labels import class_set_from
from emotion_core.ldl_metrics import LDL_KEY, summary_line
from training.cli import run_main


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Predict with Grad-CAM on dataset splits and write metrics.")
    parser.add_argument("--run", required=True, help="run dir holding checkpoint.pt; outputs are written here")
    parser.add_argument("--dataset", required=True, help="dataset dir holding manifest.parquet")
    parser.add_argument("--split", default="test", help="split(s) to evaluate, comma-separated (default: test)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    parser.add_argument("--workers", type=int, default=2,
                        help="DataLoader worker processes (default 2); they also compute the image attributes "
                             "(about 35 photos/s per worker), so give a GPU enough of them to keep up")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda when available)")
    parser.add_argument("--no-attributes", dest="attributes", action="store_false",
                        help="skip the automatic image attributes (monochrome, warm, faces, ...)")
    return parser


def main(args: argparse.Namespace) -> dict:
    splits = tuple(s.strip() for s in args.split.split(",") if s.strip())
    metrics = evaluate_run(args.run, args.dataset, splits=splits, batch_size=args.batch_size,
                           workers=args.workers, device=args.device, attributes=args.attributes)
    print_summary(metrics)
    return metrics


def print_summary(metrics: dict) -> None:
    """Accuracy per split, then a line of the emotion-aware metrics that apply and one of the LDL metrics
    (datasets with vote distributions)."""
    classes = class_set_from(metrics.get("classes"))
    for split, values in metrics["splits"].items():
        print(f"{split}: accuracy {values['accuracy']:.1%} on {values['n_images']} images")
        aware = split_emotion_metrics(values, None, classes)
        for line in (summary_text(aware), summary_line(aware.get(LDL_KEY))):
            if line:
                print(f"  {line}")


if __name__ == "__main__":
    run_main(main, get_args_parser().parse_args())
