"""Build the built-in demo: SYNTHETIC images with the paper's failure modes planted,
a small VGG trained on the CPU through the one training loop, and its evaluation.

  python -m training.demo            # into $EMOLENS_HOME (default ./workspace)
"""
from __future__ import annotations

import argparse
import fcntl
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from emotion_core.dataset import write_dataset
from emotion_core.demo_data import generate
from emotion_core.fileio import write_csv, write_json
from emotion_core.importers import import_manifest
from emotion_core.splits import parse_split_spec
from emotion_core.workspace import datasets_dir, runs_dir
from training.cli import run_main
from training.schedule import single_stage
from training.train import TrainConfig, train

Progress = Callable[[float, str], None]
DEMO_NAME = "demo"
DEMO_NOTE = "SYNTHETIC demo data: drawn scenes with planted failure modes, not FI images"


@dataclass
class DemoConfig:
    n_per_class: int = 110
    image_size: int = 64
    epochs: int = 12
    lr: float = 2e-3
    batch_size: int = 32
    split: str = "70/10/20"
    seed: int = 0


def demo_paths() -> tuple[Path, Path]:
    """(dataset dir, run dir) of the demo in the current workspace."""
    return datasets_dir() / DEMO_NAME, runs_dir() / DEMO_NAME


@contextmanager
def build_lock(run_dir: Path, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock next to the demo run: one build at a time, across processes.
    Yields False without waiting when wait=False and another process holds it."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{run_dir.name}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def demo_building(run_dir: Path | None = None) -> bool:
    """True while another process is building the demo."""
    with build_lock(Path(run_dir or demo_paths()[1]), wait=False) as acquired:
        return not acquired


def build_demo(config: DemoConfig = DemoConfig(), progress: Progress | None = None,
               dataset_dir: Path | None = None, run_dir: Path | None = None, reuse: bool = False) -> dict:
    """Generate, import, train and evaluate; returns the training result with test metrics.

    One build at a time: a second caller waits; with reuse=True it then takes the
    finished demo instead of building again. A half-built demo (no metrics.json) is
    removed and built again.
    """
    default_dataset, default_run = demo_paths()
    dataset_dir, run_dir = Path(dataset_dir or default_dataset), Path(run_dir or default_run)
    with build_lock(run_dir):
        if reuse and (run_dir / "metrics.json").exists():
            return {"out": str(run_dir), "reused": True}
        return _build(config, progress, dataset_dir, run_dir)


def _build(config: DemoConfig, progress: Progress | None, dataset_dir: Path, run_dir: Path) -> dict:
    report = progress or (lambda fraction, text: None)
    started = time.perf_counter()
    for folder in (dataset_dir, run_dir):
        shutil.rmtree(folder, ignore_errors=True)
    report(0.02, "drawing synthetic images")
    _write_images(config, dataset_dir)
    report(0.10, "importing the synthetic images")
    manifest, import_report, classes = import_manifest(dataset_dir / "demo_manifest.csv", workers=4)
    write_dataset(dataset_dir, manifest, {**import_report.to_dict(), "note": DEMO_NOTE}, classes)
    train_config = TrainConfig(dataset=str(dataset_dir), out=str(run_dir), arch="vgg_small", fc="8", dropout=0.3,
                               input_size=config.image_size, pretrained=False, batch_size=config.batch_size,
                               workers=0, seed=config.seed, eval_split="train,dev,test")  # train: neighbours
    stages = single_stage(config.lr, config.epochs)
    result = train(train_config, stages, progress=lambda f, text: report(0.12 + 0.8 * f, text))
    write_json(run_dir / "demo.json", {"synthetic_demo": True, "note": DEMO_NOTE,
                                       "seconds": time.perf_counter() - started, "config": vars(config)})
    report(1.0, "demo ready")
    return result


def _write_images(config: DemoConfig, dataset_dir: Path) -> None:
    rows = []
    items = generate(config.n_per_class, config.image_size, config.seed, parse_split_spec(config.split))
    for index, item in enumerate(items):
        relative = Path("images") / item.label / f"{item.label}_{index:05d}.png"
        (dataset_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        item.image.save(dataset_dir / relative)
        rows.append({"image_id": relative.stem, "path": str(relative), "label": item.label,
                     "agree": item.agree, "disagree": item.disagree, "split": item.split,
                     "demo_trait": item.trait})
    write_csv(dataset_dir / "demo_manifest.csv", pd.DataFrame(rows))


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Build the synthetic demo dataset and run (CPU, about a minute).")
    defaults = DemoConfig()
    parser.add_argument("--n-per-class", type=int, default=defaults.n_per_class,
                        help="ordinary images per emotion (default 110); dev and test get the planted ones on top")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="image side in pixels (default 64)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="training epochs (default 12)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help="seed of images, votes and training (the planted failure modes appear with any seed)")
    parser.add_argument("--reuse", action="store_true", help="keep a finished demo instead of building it again")
    parser.add_argument("--progress-file", default=None,
                        help="also write progress as JSON here (the dashboard follows a build this way)")
    return parser


def progress_writer(path: str | None) -> Progress | None:
    """Progress to a JSON file {fraction, text}, written atomically, for another process to read."""
    if not path:
        return None
    return lambda fraction, text: write_json(path, {"fraction": fraction, "text": text})


def main(args: argparse.Namespace) -> dict:
    config = DemoConfig(n_per_class=args.n_per_class, image_size=args.image_size, epochs=args.epochs, seed=args.seed)
    started = time.perf_counter()
    result = build_demo(config, progress=progress_writer(args.progress_file), reuse=args.reuse)
    for split, metrics in result.get("metrics", {}).items():
        print(f"demo {split} accuracy: {metrics['accuracy']:.1%} ({metrics['n_images']} images)")
    print(f"demo built in {time.perf_counter() - started:.1f} s: {result['out']}  [{DEMO_NOTE}]")
    return result


if __name__ == "__main__":
    run_main(main, get_args_parser().parse_args())
