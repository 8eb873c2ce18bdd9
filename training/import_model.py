"""Import a model trained elsewhere: a torchvision-compatible state dict -> an EmoLens run dir.

  python -m training.import_model --arch resnet50 --weights my_resnet.pth --dataset workspace/datasets/fi \\
      --out workspace/runs/fi-resnet50-mine
  python -m training.evaluate --run workspace/runs/fi-resnet50-mine --dataset workspace/datasets/fi

The weights (.pth/.pt read with weights_only=True, or .safetensors; keys with or without the
'module.' prefix of DistributedDataParallel) must fit the model EmoLens builds for --arch, --head
and --fc with one output per class of the dataset, in the dataset's class order. Every tensor's
shape is checked before anything is written. Writes checkpoint.pt and run.json.
"""
from __future__ import annotations

import argparse
import shutil
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from emotion_core.dataset import read_dataset
from emotion_core.fileio import file_sha256, write_json
from emotion_core.import_weights import WeightsError, load_weights, model_config
from emotion_core.model import ARCHITECTURES, save_checkpoint
from training.cli import run_main

RUN_FILES = ("checkpoint.pt", "last.pt", "metrics.json")  # any one: the folder already holds a run
# What the previous run in --out made, removed on --overwrite: metrics.json first, so that a
# half-replaced run never looks evaluated; last.pt, or a later `training.train --resume` would
# continue the previous model, not this one.
PREVIOUS_RUN_FILES = ("metrics.json", "predictions.parquet", "cams.npy", "attributes.parquet", "embeddings.npy",
                      "history.csv", "last.pt")


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Turn a state dict trained elsewhere into an EmoLens run dir "
                                                 "that training.evaluate evaluates like any other run.")
    parser.add_argument("--arch", required=True, help=f"architecture of the weights ({', '.join(ARCHITECTURES)})")
    parser.add_argument("--weights", required=True,
                        help="state dict file: .pth/.pt (loaded with weights_only=True) or .safetensors; "
                             "'module.' prefixes are removed")
    parser.add_argument("--head", default=None,
                        help="classifier head the weights were trained with: linear (torchvision's own head, its "
                             "last layer sized to the classes; the default) or paper (dropout + FC layers of --fc "
                             "sizes, as training.train makes by default)")
    parser.add_argument("--fc", default=None,
                        help="FC sizes of the head, e.g. '8' or '16x8', ending in the number of classes "
                             "(default: one layer of that many)")
    parser.add_argument("--input-size", type=int, default=224, help="input side in pixels (default 224)")
    parser.add_argument("--dataset", required=True,
                        help="dataset dir (manifest.parquet, classes.json): the weights' outputs are its classes, "
                             "in its order")
    parser.add_argument("--out", required=True, help="run dir to create (checkpoint.pt, run.json)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a run already in --out (its evaluation files, history.csv and last.pt "
                             "are removed: they were made by another model)")
    return parser


def main(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    refuse_existing_run(out, args.overwrite)
    _, classes = read_dataset(args.dataset)
    config = model_config(args.arch, classes, fc=args.fc, head=args.head, input_size=args.input_size)
    model = load_weights(args.weights, config, classes)
    source = {"kind": "imported model", "weights": str(Path(args.weights).resolve()),
              "weights_sha256": file_sha256(args.weights)}
    remove_previous_run(out)
    save_checkpoint(out / "checkpoint.pt", model, config, classes, source=source)
    write_json(out / "run.json", {"source": "imported model", **source, "model": asdict(config),
                                  "classes": classes.to_dict(), "dataset": str(Path(args.dataset).resolve()),
                                  "imported": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    print(f"imported {args.weights} as {args.arch} for {len(classes)} classes into {out / 'checkpoint.pt'}")
    print(f"next: python -m training.evaluate --run {out} --dataset {args.dataset}")
    return out


def refuse_existing_run(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise WeightsError(f"--out {out} is a file, not a folder; choose a run dir")
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise WeightsError(f"{out} already holds a run ({existing[0]}); choose another --out or pass --overwrite")


def remove_previous_run(out: Path) -> None:
    """The previous run's files (PREVIOUS_RUN_FILES, in that order) and its cached overlays."""
    for name in PREVIOUS_RUN_FILES:
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "cache", ignore_errors=True)


if __name__ == "__main__":
    run_main(main, get_args_parser().parse_args())
