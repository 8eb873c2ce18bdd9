"""Out-of-sample class probabilities for every image of a split, by K-fold cross-validation.

  python -m training.crossval --run workspace/runs/fi-vgg19 --folds 5
  torchrun --nproc_per_node=4 -m training.crossval --run-dir workspace/runs/fi-vgg19 --folds 5

The run's own recipe (run.json: architecture, head, schedule, options) trains K models: model k
on every image of the split(s) outside fold k (folds stratified by label, seeded), choosing its
checkpoint on the dataset's dev split as the run did; it then predicts fold k, which it never saw.
Confident learning (the Label issues page) needs exactly these probabilities: a model's
predictions on its own training images are over-confident in their given labels.

Writes RUN/oof_probabilities.parquet (image_id, path, split, label, label_idx, fold, p_<class>),
RUN/crossval.json (folds, seed, sizes and held-out accuracy per fold, the recipe) and
RUN/crossval/fold_<k>/ (each fold model's run dir). Run it again after an interruption: finished
folds are skipped and an interrupted one resumes from its last completed epoch.

Under torchrun every process reads and writes RUN: rank 0 alone writes each fold's dataset
(RUN/crossval/datasets/fold_<k>) and held-out predictions, which the other ranks then read, so a
multi-node run needs RUN (and the dataset) on a filesystem every node shares.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from sklearn.model_selection import StratifiedKFold
from tqdm import tqdm

from emotion_core.dataset import MANIFEST_FILE, read_dataset, split_rows, write_dataset
from emotion_core.evaluation import evaluate_frame
from emotion_core.fileio import file_sha256, write_json, write_parquet
from emotion_core.labels import ClassSet, class_set_from, describe_classes
from emotion_core.model import load_checkpoint
from emotion_core.predict import Predictor
from emotion_core.runs import read_json
from training.cli import run_main
from training.distributed import (DistInfo, barrier, dist_info_from_env, gather_to_main, pick_device,
                                  process_group_backend, shutdown)
from training.schedule import Stage
from training.train import TrainConfig, train

OOF_FILE, CROSSVAL_FILE, CROSSVAL_DIR = "oof_probabilities.parquet", "crossval.json", "crossval"
HELDOUT_FILE, PLAN_FILE = "heldout.parquet", "plan.json"
ROW_COLUMNS = ("image_id", "path", "split", "label", "label_idx")
# run.json config keys that belong to one training invocation, not to the recipe
INVOCATION_KEYS = ("dataset", "out", "resume", "stop_after", "evaluate", "eval_split")


@dataclass
class CrossvalConfig:
    run: str
    folds: int = 5
    splits: tuple[str, ...] = ("train",)
    seed: int = 0                      # of the fold assignment; the fold models keep the run's seed
    dataset: str | None = None         # None: the run's dataset
    batch_size: int | None = None      # None: the run's
    workers: int | None = None
    device: str | None = None


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train K fold models with a run's recipe and write out-of-sample "
                                                 "class probabilities for every image of a split.")
    add = parser.add_argument
    add("--run", "--run-dir", dest="run", required=True, help="run dir whose run.json gives the recipe; outputs are "
        "written here (under torchrun write --run-dir: torchrun's own parser takes --run for its --run-path)")
    add("--folds", type=int, default=5, help="number of folds K, at least 2 (default 5)")
    add("--split", default="train", help="split(s) to cross-validate, comma-separated (default: train; "
        "not dev, which the fold models choose their checkpoint on)")
    add("--seed", type=int, default=0, help="seed of the stratified fold assignment (default 0)")
    add("--dataset", default=None, help="dataset dir (default: the one in the run's run.json)")
    add("--batch-size", type=int, default=None, help="global batch size (default: the run's)")
    add("--workers", type=int, default=None, help="DataLoader worker processes per process (default: the run's)")
    add("--device", default=None, help="torch device (default: the run's; cuda when available)")
    return parser


def config_from_args(args: argparse.Namespace) -> CrossvalConfig:
    splits = tuple(s.strip() for s in args.split.split(",") if s.strip())
    return CrossvalConfig(run=args.run, folds=args.folds, splits=splits, seed=args.seed, dataset=args.dataset,
                          batch_size=args.batch_size, workers=args.workers, device=args.device)


def main(args: argparse.Namespace) -> dict | None:
    summary = crossval(config_from_args(args))
    if summary is not None:
        print(summary_line(summary, args.run))
    return summary


def summary_line(summary: dict, run: str) -> str:
    per_fold = ", ".join(f"{f['heldout_accuracy']:.1%}" for f in summary["per_fold"])
    return (f"{summary['folds']}-fold cross-validation of {'+'.join(summary['splits'])}: out-of-sample accuracy "
            f"{summary['oof_accuracy']:.1%} on {summary['images']} images (folds: {per_fold}). "
            f"Wrote {Path(run) / OOF_FILE}")


# ---- the folds ---------------------------------------------------------------------------

def assign_folds(labels: pd.Series, *, folds: int, seed: int, split_name: str = "the split") -> np.ndarray:
    """Fold index (0..folds-1) per row, stratified by label and seeded. Every class present
    must have at least `folds` images, or some fold model would see none of it."""
    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}")
    counts = labels.value_counts().sort_index()  # ties: the first class by name, the same every time
    rarest, fewest = counts.idxmin(), int(counts.min())
    if fewest < 2:  # no --folds would do: an image held out must leave another of its class to train on
        raise ValueError(f"cross-validation needs at least 2 images of every class, but {split_name} has "
                         f"{fewest} {rarest!r} image; add images of {rarest!r} or cross-validate another split")
    if fewest < folds:
        raise ValueError(f"--folds {folds} is more than the {fewest} {rarest!r} images of {split_name}: "
                         f"every fold needs an image of each class; use --folds {fewest} or fewer")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    assignment = np.empty(len(labels), dtype="int64")
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels.to_numpy())):
        assignment[held_out] = fold
    return assignment


@dataclass
class Plan:
    """What one cross-validation is; a rerun into the same run dir must be the same."""
    run_dir: Path
    dataset: str
    classes: ClassSet               # the run's (names, display, wheel); the dataset's ids in the same order
    recipe: TrainConfig             # dataset and out filled per fold
    stages: list[Stage] | None      # the run's schedule as trained (None: the recipe builds it)
    rows: pd.DataFrame              # the cross-validated images, manifest order
    fold_of_row: np.ndarray
    folds: int
    seed: int
    splits: tuple[str, ...]

    def fold_dir(self, fold: int) -> Path:
        return self.run_dir / CROSSVAL_DIR / f"fold_{fold}"

    def fold_dataset_dir(self, fold: int) -> Path:
        return self.run_dir / CROSSVAL_DIR / "datasets" / f"fold_{fold}"

    def identity(self) -> dict:
        return {"folds": self.folds, "seed": self.seed, "splits": list(self.splits),
                "dataset": str(Path(self.dataset).resolve()),
                "dataset_manifest_sha256": file_sha256(Path(self.dataset) / MANIFEST_FILE)}


def make_plan(config: CrossvalConfig) -> Plan:
    """Every check that can fail before training: run, recipe, dataset, class set, splits, folds."""
    run_dir = Path(config.run)
    meta = _read_run(run_dir)
    recipe = _recipe(meta, config)
    dataset = config.dataset or meta["config"]["dataset"]
    if not config.dataset and not (Path(dataset) / MANIFEST_FILE).is_file():
        raise ValueError(f"{run_dir}: its dataset {dataset} holds no {MANIFEST_FILE}; pass --dataset DIR")
    manifest, dataset_classes = read_dataset(dataset)
    classes = class_set_from(meta.get("classes")) if meta.get("classes") else dataset_classes
    if not classes.same_classes(dataset_classes):
        raise ValueError(f"run {run_dir} was trained on {describe_classes(classes)}; "
                         f"dataset {dataset} has {describe_classes(dataset_classes)}")
    if not config.splits or "dev" in config.splits:
        raise ValueError("--split: name train and/or test; dev is where each fold model chooses its checkpoint")
    rows = pd.concat([split_rows(manifest, s) for s in config.splits], ignore_index=True)
    fold_of_row = assign_folds(rows["label"], folds=config.folds, seed=config.seed,
                               split_name=f"the {'+'.join(config.splits)} split")
    smallest_training_set = len(rows) - int(np.bincount(fold_of_row).max())
    if smallest_training_set < recipe.batch_size:
        raise ValueError(f"a fold model would train on {smallest_training_set} images, fewer than the batch size "
                         f"{recipe.batch_size}; pass a smaller --batch-size or fewer --folds")
    return Plan(run_dir, dataset, classes, recipe, _stages(meta), rows, fold_of_row, config.folds, config.seed,
                config.splits)


def _read_run(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    if not path.is_file():
        raise ValueError(f"{run_dir}: no run.json; cross-validation repeats a run's recipe, so train the run "
                         "with training.train first")
    meta = read_json(path)
    if not isinstance(meta.get("config"), dict) or "dataset" not in meta["config"]:
        raise ValueError(f"{path}: no training config (a run of imported predictions or a model trained "
                         "elsewhere has no recipe to repeat)")
    return meta


def _recipe(meta: dict, config: CrossvalConfig) -> TrainConfig:
    """The run's TrainConfig (keys this version does not know are dropped, new ones take their
    defaults), with the command line's batch size, workers and device where given."""
    known = {f.name for f in fields(TrainConfig)}
    saved = {k: v for k, v in meta["config"].items() if k in known and k not in INVOCATION_KEYS}
    overrides = {k: v for k, v in (("batch_size", config.batch_size), ("workers", config.workers),
                                   ("device", config.device)) if v is not None}
    return TrainConfig(**{**saved, **overrides, "dataset": "", "out": "", "evaluate": False})


def _stages(meta: dict) -> list[Stage] | None:
    """The schedule the run trained with, as run.json records it (a schedule file may have moved
    or changed since; a search or the demo passed its stages without one)."""
    names = {f.name for f in fields(Stage)}
    saved = meta.get("schedule")
    return [Stage(**{k: v for k, v in stage.items() if k in names}) for stage in saved] if saved else None


# ---- running it --------------------------------------------------------------------------

def crossval(config: CrossvalConfig) -> dict | None:
    """Train and predict every fold (skipping finished ones); on rank 0 write the out-of-sample
    table and crossval.json and return the summary, elsewhere return None."""
    plan = make_plan(config)
    info = dist_info_from_env()
    device = pick_device(plan.recipe.device, info, torch.cuda.device_count())
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    _check_same_plan(plan, info)
    heldout = []
    for fold in tqdm(range(plan.folds), desc="folds", unit="fold", disable=not info.is_main):
        heldout.append(_run_fold(plan, fold, info, device))
    if not info.is_main:
        return None
    return _write_results(plan, heldout)


def _check_same_plan(plan: Plan, info: DistInfo) -> None:
    """A rerun continues only the same cross-validation: other folds, seed, splits or dataset
    would mix fold models of two assignments."""
    path = plan.run_dir / CROSSVAL_DIR / PLAN_FILE
    identity = plan.identity()
    saved = read_json(path)
    if saved and saved != identity:
        changed = next(k for k in [*identity, *saved] if saved.get(k) != identity.get(k))  # one differs: != above
        raise ValueError(f"{plan.run_dir / CROSSVAL_DIR} holds a cross-validation with another {changed} "
                         f"({saved.get(changed)} there, {identity.get(changed)} now); rerun with the same "
                         f"--folds/--seed/--split/--dataset, or delete that folder to start over")
    if info.is_main and not saved:
        write_json(path, identity)


def _run_fold(plan: Plan, fold: int, info: DistInfo, device: torch.device) -> pd.DataFrame | None:
    """Train fold `fold`'s model (unless trained) and predict its held-out rows (unless done).
    Every process decides from files no process writes before the group below has formed."""
    fold_dir = plan.fold_dir(fold)
    if (fold_dir / HELDOUT_FILE).is_file():
        return pd.read_parquet(fold_dir / HELDOUT_FILE) if info.is_main else None
    if not read_json(fold_dir / "run.json").get("finished"):
        _join_group(info, device, f"fold_{fold}/train")
        if info.is_main:
            _write_fold_dataset(plan, fold)
        barrier(info)
        fold_config = replace(plan.recipe, dataset=str(plan.fold_dataset_dir(fold)), out=str(fold_dir),
                              resume=(fold_dir / "last.pt").is_file())
        train(fold_config, plan.stages)  # leaves no process group behind: it shuts down the one it ran in
    _join_group(info, device, f"fold_{fold}/predict")
    try:
        table = _predict_heldout(plan, fold, info, device)
    finally:
        shutdown(info)
    if table is not None:
        write_parquet(fold_dir / HELDOUT_FILE, table)
    return table


def _join_group(info: DistInfo, device: torch.device, name: str) -> None:
    """A fresh process group per phase, its store keys under their own prefix: after
    destroy_process_group a second init on the same keys reads the last group's stale
    addresses (gloo then fails to connect). train() uses a group it finds already formed."""
    if not info.enabled:
        return
    store, rank, world_size = next(dist.rendezvous("env://"))
    prefix = f"crossval/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/{name}"
    dist.init_process_group(backend=process_group_backend(device.type), store=dist.PrefixStore(prefix, store),
                            rank=rank, world_size=world_size)


def _write_fold_dataset(plan: Plan, fold: int) -> None:
    """A dataset dir for fold model k: the other folds as its train split, the dataset's dev
    split as its dev split (fold k and images of other splits left out), the same image files
    (absolute paths) and class set. Written once, so a resumed fold trains on the same bytes."""
    out = plan.fold_dataset_dir(fold)
    if (out / MANIFEST_FILE).is_file():
        return
    manifest, classes = read_dataset(plan.dataset)
    training = plan.rows[plan.fold_of_row != fold].assign(split="train")
    dev = manifest[manifest["split"] == "dev"]
    rows = pd.concat([training, dev], ignore_index=True).drop(columns="label_idx")
    write_dataset(out, rows, {"source": f"cross-validation fold {fold} of {plan.folds} of run {plan.run_dir}",
                              "held_out": int((plan.fold_of_row == fold).sum())}, classes)


def _predict_heldout(plan: Plan, fold: int, info: DistInfo, device: torch.device) -> pd.DataFrame | None:
    """Fold k's images through fold model k, sharded over the processes and gathered on rank 0
    (shard by shard, not in row order): the table of ROW_COLUMNS, fold and p_<class> (unreadable images left out)."""
    fold_dir = plan.fold_dir(fold)
    model, model_config, _ = load_checkpoint(fold_dir / "checkpoint.pt", dataset_classes=plan.classes,
                                             dataset=plan.dataset)
    predictor = Predictor(model, model_config.input_size, device, classes=plan.classes)
    rows = plan.rows[plan.fold_of_row == fold].reset_index(drop=True)
    shard = rows.iloc[info.rank::info.world_size]
    result = evaluate_frame(predictor, shard, batch_size=max(1, plan.recipe.batch_size // info.world_size),
                            workers=min(plan.recipe.workers, 2), cams=False)  # probabilities only
    probabilities = [f"p_{name}" for name in plan.classes.names]
    table = result.table[[*ROW_COLUMNS, *probabilities]].assign(fold=fold)
    parts = gather_to_main(info)(table)
    if parts is None:
        return None
    merged = pd.concat(parts, ignore_index=True)  # in shard order: _write_results sorts every fold at once
    return merged[[*ROW_COLUMNS, "fold", *probabilities]]


def _write_results(plan: Plan, heldout: list[pd.DataFrame]) -> dict:
    """oof_probabilities.parquet in manifest order, then crossval.json."""
    oof = pd.concat(heldout, ignore_index=True)
    position = pd.Series(np.arange(len(plan.rows)), index=plan.rows["image_id"])
    oof = oof.iloc[np.argsort(position[oof["image_id"]].to_numpy(), kind="stable")].reset_index(drop=True)
    probabilities = oof[[f"p_{name}" for name in plan.classes.names]].to_numpy()
    correct = probabilities.argmax(axis=1) == oof["label_idx"].to_numpy()
    summary = {
        "folds": plan.folds, "seed": plan.seed, "splits": list(plan.splits),
        "dataset": str(Path(plan.dataset).resolve()), "images": len(plan.rows),
        "predicted": len(oof), "unreadable": len(plan.rows) - len(oof),
        "oof_accuracy": float(correct.mean()) if len(oof) else 0.0,
        "per_fold": [_fold_summary(plan, fold, correct[oof["fold"].to_numpy() == fold])
                     for fold in range(plan.folds)],
        "recipe": {**{k: v for k, v in asdict(plan.recipe).items() if k not in INVOCATION_KEYS},
                   "schedule": [asdict(s) for s in plan.stages] if plan.stages else None},
        "classes": plan.classes.to_dict(),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_parquet(plan.run_dir / OOF_FILE, oof)
    write_json(plan.run_dir / CROSSVAL_FILE, summary)
    return summary


def _fold_summary(plan: Plan, fold: int, correct: np.ndarray) -> dict:
    fold_run = read_json(plan.fold_dir(fold) / "run.json")
    return {"fold": fold, "train_images": int((plan.fold_of_row != fold).sum()),
            "heldout_images": int((plan.fold_of_row == fold).sum()), "heldout_predicted": int(len(correct)),
            "heldout_accuracy": float(correct.mean()) if len(correct) else 0.0,
            "best_dev_acc": fold_run.get("best_dev_acc"), "run_dir": str(plan.fold_dir(fold))}


if __name__ == "__main__":
    run_main(main, get_args_parser().parse_args())
