"""Import FI vote files, class folders or a manifest CSV into a dataset dir.

  python -m training.prepare fi --votes FI/votes --images FI/images --out workspace/datasets/fi
  python -m training.prepare folder --root FI_release --out workspace/datasets/fi
  python -m training.prepare manifest --csv my.csv --out workspace/datasets/mine
"""
from __future__ import annotations

import argparse
import json

from emotion_core.dataset import write_dataset
from emotion_core.importers import import_fi, import_folder, import_manifest
from emotion_core.splits import SPLITS, parse_split_spec, stratified_split
from training.cli import run_main


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Import images and labels into an EmoLens dataset dir.")
    sub = parser.add_subparsers(dest="source", required=True)
    fi = sub.add_parser("fi", help="FI raw vote files plus the downloaded images")
    fi.add_argument("--votes", required=True, help="folder of header-less <emotion>_*.csv vote files")
    fi.add_argument("--images", required=True,
                    help="folder of downloaded images: <images>/<emotion>/<file> (folder names in any case, "
                         "under any of the image's emotions) or the files directly in <images>")
    folder = sub.add_parser("folder", help="a folder of class folders, <root>/<emotion>/<file>")
    folder.add_argument("--root", required=True, help="the folder holding one folder per emotion")
    manifest = sub.add_parser("manifest", help="a CSV with path and label columns (votes optional)")
    manifest.add_argument("--csv", required=True, help="the manifest CSV")
    manifest.add_argument("--path-column", default="path", help="column holding image paths (default: path)")
    manifest.add_argument("--label-column", default="label", help="column holding labels (default: label)")
    manifest.add_argument("--keep-split", action="store_true",
                          help="use the CSV's own split column instead of making a new split")
    for p in (fi, folder, manifest):
        p.add_argument("--out", required=True, help="dataset dir to write manifest.parquet and import_report.json")
        p.add_argument("--split", default="90/5/5",
                       help="train/dev/test percentages, stratified by label (default 90/5/5 as in the paper; 80/5/15 is common)")
        p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
        p.add_argument("--workers", type=int, default=None, help="threads that check images (default: cores + 2)")
    return parser


def main(args: argparse.Namespace) -> dict:
    fractions = parse_split_spec(args.split)  # validate before the slow part
    if args.source == "fi":
        manifest, report = import_fi(args.votes, args.images, workers=args.workers)
    elif args.source == "folder":
        manifest, report = import_folder(args.root, workers=args.workers)
    else:
        manifest, report = import_manifest(args.csv, path_column=args.path_column,
                                           label_column=args.label_column, workers=args.workers)
    if manifest.empty:
        raise ValueError(f"no usable images were found ({json.dumps(report.to_dict()['skipped_by_reason'])})")
    if not (getattr(args, "keep_split", False) and "split" in manifest):
        manifest["split"] = stratified_split(manifest["label"], fractions, args.seed)
    summary = report.to_dict()
    summary["split"] = {"spec": args.split, "seed": args.seed,
                        "sizes": {s: int((manifest["split"] == s).sum()) for s in SPLITS}}
    write_dataset(args.out, manifest, summary)
    print_report(summary, args.out)
    return summary


def print_report(summary: dict, out: str) -> None:
    print(f"imported {summary['kept_total']} images from {summary['rows_read']} rows into {out}")
    print(f"  skipped: {summary['skipped_by_reason'] or 'none'}; minority or tied votes: {summary['minority_votes']}; "
          f"duplicates resolved: {summary['duplicates_resolved']}; ambiguous ties left out: {summary['ambiguous_count']}")
    merged = summary["duplicate_rows_merged"]
    if merged:
        print(f"  the same image and emotion listed again: {len(merged)} rows merged "
              f"(e.g. {merged[0]['merged']} repeats {merged[0]['kept']}; all in import_report.json)")
    if summary["found_in"]:
        print("  images found in: " + ", ".join(f"{where.replace('_', ' ')} {count}"
                                                for where, count in summary["found_in"].items()))
    print(f"  {'emotion':<12} {'kept':>7}  skipped")
    for emotion, counts in summary["per_class"].items():
        print(f"  {emotion:<12} {counts['kept']:>7}  {counts['skipped'] or ''}")
    print(f"  split {summary['split']['spec']}: {summary['split']['sizes']}")


if __name__ == "__main__":
    run_main(main, get_args_parser().parse_args())
