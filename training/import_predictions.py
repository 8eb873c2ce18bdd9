"""Import another framework's predictions as a run dir (the same files as training.evaluate writes,
without a checkpoint): the dashboard shows it with the badge "imported predictions".

  python -m training.import_predictions --dataset workspace/datasets/fi --predictions preds.csv \\
      --out workspace/runs/fi-clip [--cams cams.npy] [--embeddings emb.npy] [--renormalise] [--on-bad skip]

preds.csv: an image key (image_id, else path: relative to the dataset dir or absolute) and either
one probability column per class (p_<class>, the class ids or their display names) or a predicted
label column (pred / prediction / predicted / pred_label: class ids or display names; pred_idx:
indices in the dataset's class order). The true labels and splits come from the dataset.
Other p_ columns (p_max, p_entropy, ...) are ignored with a note, unless they look like the
probabilities of another class set: then the file is refused (no p_ column names a class of the
dataset, or rows sum to 1 only with those columns added).
--cams: Grad-CAM maps, (N, h, w) for the predicted class or (N, 2, h, w) for the predicted and the
true class; --embeddings: (N, d); row i of each for row i of the predictions file.
Bad rows (no such image, duplicate key, probabilities not summing to 1, unknown class) are counted
and refused (the default: nothing is written) or skipped (--on-bad skip).
"""
from __future__ import annotations

import argparse

from emotion_core.import_run import ON_BAD, PROBLEMS, SUM_TOLERANCE, import_predictions, problem_text
from emotion_core.runs import load_metrics
from training.cli import run_main


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Turn another framework's predictions into an EmoLens run dir.")
    parser.add_argument("--dataset", required=True, help="dataset dir (manifest.parquet, classes.json): the images, "
                                                         "true labels, votes and splits")
    parser.add_argument("--predictions", required=True,
                        help="CSV, TSV or Parquet: image_id or path, and p_<class> columns (or class-named columns) "
                             "or a predicted label column. Other p_ columns (p_max, ...) are ignored with a note; "
                             "the file is refused when they look like another class set's probabilities (no p_ "
                             "column names a class of the dataset, or rows sum to 1 only with them added)")
    parser.add_argument("--out", required=True, help="run dir to create (predictions.parquet, metrics.json, ...)")
    parser.add_argument("--cams", default=None,
                        help=".npy of Grad-CAM maps, one per predictions row: (N, h, w) predicted class, or "
                             "(N, 2, h, w) predicted and true class; each is scaled to max 1")
    parser.add_argument("--embeddings", default=None, help=".npy of embeddings (N, d), one per predictions row; "
                                                           "stored as embeddings.npy")
    parser.add_argument("--renormalise", action="store_true",
                        help=f"divide probabilities by their sum where it is not 1 (±{SUM_TOLERANCE:g}) instead of "
                             "calling those rows bad")
    parser.add_argument("--on-bad", choices=ON_BAD, default="refuse",
                        help="rows " + ", ".join(PROBLEMS.values()) + ": refuse the file (default; nothing "
                             "is written) or skip those rows")
    parser.add_argument("--attributes", action="store_true",
                        help="also compute the automatic image attributes (monochrome, warm, faces, ...) from "
                             "the images, for the Trends page (about 35 images/s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an imported run already in --out")
    return parser


def main(args: argparse.Namespace) -> dict:
    meta = import_predictions(args.dataset, args.predictions, args.out, cams_file=args.cams,
                              embeddings_file=args.embeddings, renormalise=args.renormalise,
                              on_bad=args.on_bad, attributes=args.attributes, overwrite=args.overwrite)
    report = meta["import_report"]
    print(f"imported {report['rows_imported']} of {report['rows_in_file']} rows (matched by {report['key']}) "
          f"into {args.out}")
    for name, problem in report["problems"].items():
        print(f"skipped: {problem_text(name, problem)}")
    for note in report["notes"]:
        print(f"note: {note}")
    for split, values in load_metrics(args.out)["splits"].items():
        print(f"{split}: accuracy {values['accuracy']:.1%} on {values['n_images']} images")
    return meta


if __name__ == "__main__":
    run_main(main, get_args_parser().parse_args())
