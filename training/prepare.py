"""Import a dataset (FI, EmoSet, Flickr/Twitter_LDL, Emotion6, class folders or a manifest CSV)
into a dataset dir: manifest.parquet, classes.json and import_report.json.

  python -m training.prepare fi --votes FI/votes --images FI/images --out workspace/datasets/fi
  python -m training.prepare emoset --root EmoSet-118K --out workspace/datasets/emoset
  python -m training.prepare ldl --root Flickr_LDL --out workspace/datasets/flickr_ldl
  python -m training.prepare emotion6 --root Emotion6 --out workspace/datasets/emotion6
  python -m training.prepare folder --root FI_release --out workspace/datasets/fi
  python -m training.prepare folder --root ArtPhoto --label-from prefix --classes artphoto.txt --out ...
  python -m training.prepare manifest --csv my.csv --classes my_classes.json --out workspace/datasets/mine
"""
from __future__ import annotations

import argparse
import json

from emotion_core.dataset import write_dataset
from emotion_core.import_classes import read_class_file
from emotion_core.import_emoset import import_emoset
from emotion_core.import_emotion6 import import_emotion6
from emotion_core.import_ldl import import_ldl
from emotion_core.importers import LABEL_FROM, import_fi, import_folder, import_manifest
from emotion_core.labels import FI_CLASSES
from emotion_core.splits import SPLITS, parse_split_spec, stratified_split
from training.cli import run_main

CLASSES_HELP = ("classes file: JSON as a dataset's classes.json ({\"names\": [...], \"display\": [...], ...}, "
                "optional \"aliases\": {\"sad\": \"sadness\"}) or text, one class per line in model order, "
                "'sadness = sad' adds an alias (default: FI's eight)")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Import images and labels into an EmoLens dataset dir.")
    sub = parser.add_subparsers(dest="source", required=True)
    fi = sub.add_parser("fi", help="FI raw vote files plus the downloaded images")
    fi.add_argument("--votes", required=True, help="folder of header-less <emotion>_*.csv vote files")
    fi.add_argument("--images", required=True,
                    help="folder of downloaded images: <images>/<emotion>/<file> (folder names in any case, "
                         "under any of the image's emotions) or the files directly in <images>")
    emoset = sub.add_parser("emoset", help="EmoSet-118K as released: official splits kept, attributes as attr_*")
    emoset.add_argument("--root", required=True,
                        help="folder holding info.json, train/val/test.json, annotation/ and image/")
    ldl = sub.add_parser("ldl", help="Flickr_LDL or Twitter_LDL: vote counts over the 8 emotions")
    ldl.add_argument("--root", required=True, help="folder holding ground_truth.txt and images/")
    emotion6 = sub.add_parser("emotion6", help="Emotion6: 7 classes as probabilities, valence and arousal")
    emotion6.add_argument("--root", required=True, help="folder holding ground_truth.txt and images/<folder>/")
    folder = sub.add_parser("folder", help="class folders <root>/<class>/<file>, or <root>/<class>_xxx.jpg files")
    folder.add_argument("--root", required=True, help="the folder holding one folder per class, or the images")
    folder.add_argument("--label-from", choices=LABEL_FROM, default="folder",
                        help="folder: <root>/<class>/<file> (default); prefix: one flat folder of "
                             "<class>_xxx.jpg files (e.g. ArtPhoto)")
    manifest = sub.add_parser("manifest", help="a CSV with path and label columns (votes optional)")
    manifest.add_argument("--csv", required=True, help="the manifest CSV")
    manifest.add_argument("--path-column", default="path", help="column holding image paths (default: path)")
    manifest.add_argument("--label-column", default="label", help="column holding labels (default: label)")
    manifest.add_argument("--keep-split", action="store_true",
                          help="use the CSV's own split column instead of making a new split")
    for p in (folder, manifest):
        p.add_argument("--classes", default=None, help=CLASSES_HELP)
    for p in (fi, emoset, ldl, emotion6, folder, manifest):
        p.add_argument("--out", required=True,
                       help="dataset dir to write manifest.parquet, classes.json and import_report.json")
        p.add_argument("--workers", type=int, default=None, help="threads that read files and check images "
                                                                 "(default: cores + 2, at most 8)")
    for p in (fi, ldl, emotion6, folder, manifest):  # EmoSet keeps its official split
        p.add_argument("--split", default="90/5/5",
                       help="train/dev/test percentages, stratified by label (default 90/5/5 as in the paper; 80/5/15 is common)")
        p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    return parser


def run_importer(args: argparse.Namespace):
    """(manifest, report, classes) of the chosen format."""
    if args.source == "fi":
        return import_fi(args.votes, args.images, workers=args.workers)
    if args.source == "emoset":
        return import_emoset(args.root, workers=args.workers)
    if args.source == "ldl":
        return import_ldl(args.root, workers=args.workers)
    if args.source == "emotion6":
        return import_emotion6(args.root, workers=args.workers)
    classes, aliases = read_class_file(args.classes) if getattr(args, "classes", None) else (FI_CLASSES, {})
    if args.source == "folder":
        return import_folder(args.root, label_from=getattr(args, "label_from", "folder"), classes=classes,
                             aliases=aliases, workers=args.workers)
    return import_manifest(args.csv, path_column=args.path_column, label_column=args.label_column,
                           classes=classes, aliases=aliases, workers=args.workers)


def main(args: argparse.Namespace) -> dict:
    official_split = args.source == "emoset"
    fractions = None if official_split else parse_split_spec(args.split)  # validate before the slow part
    manifest, report, classes = run_importer(args)
    if manifest.empty:
        raise ValueError(f"no usable images were found ({json.dumps(report.to_dict()['skipped_by_reason'])})")
    keep_split = official_split or (getattr(args, "keep_split", False) and "split" in manifest)
    if not keep_split:
        manifest["split"] = stratified_split(manifest["label"], fractions, args.seed)
    summary = report.to_dict()
    summary["classes"] = list(classes.names)
    summary["split"] = {"spec": "official" if official_split else args.split,
                        "seed": None if official_split else args.seed,
                        "sizes": {s: int((manifest["split"] == s).sum()) for s in SPLITS}}
    write_dataset(args.out, manifest, summary, classes)
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
    for name, value in summary["details"].items():
        print(f"  {name.replace('_', ' ')}: {value}")
    print(f"  {'class':<12} {'kept':>7}  skipped")
    for emotion, counts in summary["per_class"].items():
        print(f"  {emotion:<12} {counts['kept']:>7}  {counts['skipped'] or ''}")
    print(f"  split {summary['split']['spec']}: {summary['split']['sizes']}")


if __name__ == "__main__":
    run_main(main, get_args_parser().parse_args())
