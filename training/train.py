"""Fine-tune a VGG on a dataset dir with the paper's staged unfreezing (or any schedule).

  python -m training.train --dataset workspace/datasets/fi --out workspace/runs/fi-vgg19
  torchrun --nproc_per_node=4 -m training.train --dataset ... --out ...

Writes to the run dir: checkpoint.pt (best dev accuracy), last.pt (for --resume),
history.csv, run.json, then the evaluation files (see training.evaluate).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NoReturn

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from emotion_core.dataset import ImageDataset, read_dataset, split_rows
from emotion_core.evaluation import PREFETCH_BATCHES, evaluate_run
from emotion_core.fileio import file_sha256, write_csv, write_json
from emotion_core.labels import FI_CLASSES, NUM_CLASSES, ClassSet
from emotion_core.model import (ARCHITECTURES, HEADS, ModelConfig, build_model, checkpoint_classes,
                                parameters_in_groups, read_checkpoint, save_checkpoint)
from emotion_core.runs import read_json
from emotion_core.targets import DEFAULT_EPSILON, ONE_HOT, SPREADS, TARGETS, TargetOptions, build_targets
from emotion_core.transforms import eval_transform, train_transform
from training.cli import run_main
from training.distributed import (DistInfo, all_reduce_sum, barrier, dist_info_from_env, gather_to_main,
                                  init_distributed, pick_device, shutdown)
from training.sampling import GlobalBatchSampler
from training.schedule import Stage, check_schedule, load_schedule, paper_schedule, schedule_to_dicts

Progress = Callable[[float, str], None]


@dataclass
class TrainConfig:
    dataset: str
    out: str
    arch: str = "vgg19"
    fc: str = ""                      # head FC sizes ending in the class count; "": one layer of that size
    head: str = "paper"               # "paper" (dropout + FC sizes) or "linear" (torchvision's own head)
    dropout: float = 0.5
    input_size: int = 224
    pretrained: bool = True
    batch_norm: bool = True
    schedule: str | None = None       # YAML/JSON file; None: the paper's schedule
    epochs_per_stage: int = 3
    patience: int = 0                 # stop a stage after this many epochs without a better dev accuracy (0: never)
    batch_size: int = 32
    workers: int = 4
    seed: int = 0
    class_weighted: bool = False
    balanced_sampler: bool = False
    augment: bool = True
    amp: bool = True                  # bf16 autocast on CUDA
    channels_last: bool = True
    compile: bool = False
    deterministic: bool = False
    device: str = ""                  # "" picks cuda when available
    resume: bool = False
    evaluate: bool = True
    eval_split: str = "test"
    stop_after: int = 0               # stop after this many epochs in this invocation (0: run to the end)
    target: str = "onehot"            # what the loss trains towards: onehot, votes or smoothed (emotion_core.targets)
    spread: str = "uniform"           # votes on FI: where the disagree share goes (uniform, polarity, wheel)
    epsilon: float = DEFAULT_EPSILON  # smoothed: the label-smoothing epsilon
    mix: float = 0.0                  # weight of the one-hot cross-entropy mixed into a soft-target loss

    def model_config(self, classes: ClassSet = FI_CLASSES) -> ModelConfig:
        """The model for a dataset of these classes: the head ends in one output per class."""
        return ModelConfig(arch=self.arch, head=self.head, fc=self.fc or str(len(classes)), dropout=self.dropout,
                           input_size=self.input_size, pretrained=self.pretrained, batch_norm=self.batch_norm,
                           classes=list(classes.names))

    def target_options(self) -> TargetOptions:
        return TargetOptions(target=self.target, spread=self.spread, epsilon=self.epsilon, mix=self.mix)


@dataclass
class TrainState:
    """Where training stands; saved in last.pt so that --resume continues exactly."""
    stage: int = 0
    stage_epoch: int = 0      # epochs completed in the current stage
    global_epoch: int = 0     # epochs completed overall
    best_dev_acc: float = -1.0
    stage_best: float = -1.0
    stale_epochs: int = 0


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train an emotion classifier with staged unfreezing.")
    defaults = TrainConfig(dataset="", out="")
    add = parser.add_argument
    add("--dataset", required=True, help="dataset dir holding manifest.parquet (needs train and dev splits)")
    add("--out", required=True, help="run dir to write checkpoints, history and evaluation")
    add("--arch", default=defaults.arch, choices=ARCHITECTURES, help="backbone: vgg19 (the paper), vgg16, resnet50, "
        "convnext_tiny, vit_b_16 (torchvision, ImageNet weights) or vgg_small (CPU demo/tests); default vgg19")
    add("--head", default=defaults.head, choices=HEADS, help="paper: dropout + the --fc layers (default); linear: "
        "torchvision's own head, last layer sized to the classes (--fc and --dropout do not apply)")
    add("--fc", default=defaults.fc, help="head FC sizes ending in the number of classes, e.g. 8, 8x8, 16x8 for "
        "FI's eight (default: one FC layer, as many outputs as the dataset has classes)")
    add("--dropout", type=float, default=defaults.dropout, help="dropout before each FC layer (default 0.5)")
    add("--input-size", type=int, default=defaults.input_size, help="square input size in pixels (default 224)")
    add("--no-pretrained", dest="pretrained", action="store_false", help="start from random weights, not ImageNet")
    add("--no-batch-norm", dest="batch_norm", action="store_false", help="vgg_small without batch norm")
    add("--schedule", default=None, help="YAML/JSON list of stages replacing the paper's schedule")
    add("--epochs-per-stage", type=int, default=defaults.epochs_per_stage, help="epochs of each paper stage (default 3)")
    add("--patience", type=int, default=0, help="early stopping: end a stage after N epochs without dev improvement (0: off)")
    add("--batch-size", type=int, default=defaults.batch_size, help="global batch size, split over processes (default 32)")
    add("--workers", type=int, default=defaults.workers, help="DataLoader worker processes per process (default 4)")
    add("--seed", type=int, default=0, help="seed of weights, data order and dropout (default 0)")
    add("--class-weighted", action="store_true", help="weight the loss by inverse class frequency")
    add("--balanced-sampler", action="store_true", help="draw classes equally often")
    add("--no-augment", dest="augment", action="store_false", help="no random crops/flips in training")
    add("--no-amp", dest="amp", action="store_false", help="disable bf16 autocast on CUDA")
    add("--no-channels-last", dest="channels_last", action="store_false", help="keep NCHW memory layout")
    add("--compile", action="store_true", help="torch.compile the model")
    add("--deterministic", action="store_true", help="deterministic kernels (slower)")
    add("--device", default="", help="torch device (default: cuda when available, else cpu)")
    add("--resume", action="store_true", help="continue from RUN_DIR/last.pt after an interruption (refused if "
        "the model, class set, schedule, training target or dataset differs from the saved run)")
    add("--no-evaluate", dest="evaluate", action="store_false", help="skip evaluating the best checkpoint at the end")
    add("--eval-split", default=defaults.eval_split, help="split(s) evaluated at the end (default test)")
    add("--stop-after", type=int, default=0, help="stop after N epochs in this invocation; continue later with --resume")
    add("--target", default=defaults.target, choices=TARGETS, help="what the loss trains towards: onehot (the "
        "label, default), votes (the annotators' vote distribution; on FI the agree share on the label, the rest "
        "spread by --spread) or smoothed (label smoothing by --epsilon). The loss, logged as train_loss/dev_loss, "
        "is the cross-entropy to the target = KL(target || predicted) + the target's entropy (the KL's gradient, "
        "not its value)")
    add("--spread", default=defaults.spread, choices=SPREADS, help="--target votes only, with FI's agree/disagree "
        "votes: spread the disagree share uniformly over the other classes, over those of the label's polarity, or by "
        "1/distance on Mikels' wheel (an assumption, not data; default uniform)")
    add("--epsilon", type=float, default=defaults.epsilon, help="--target smoothed only: target (1-eps)·one-hot "
        f"+ eps/C (default {DEFAULT_EPSILON})")
    add("--mix", type=float, default=defaults.mix, help="--target votes or smoothed: loss = (1-mix)·cross-entropy "
        "to the soft target + mix·one-hot cross-entropy (0..1, default 0): mix weighs the one-hot term, so JCDL's "
        "λ (Yang et al. 2017, (1-λ)·L_cls + λ·L_sdl, λ on the distribution term) is 1 - mix")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})


def main(args: argparse.Namespace) -> dict:
    result = train(config_from_args(args))
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary_line(result, args.out))
    return result


def summary_line(result: dict, out: str) -> str:
    if result.get("stopped"):
        done = result["state"]["global_epoch"]
        return f"stopped after epoch {done} as asked; continue with the same command plus --resume ({out})"
    line = f"best dev accuracy {result['best_dev_acc']:.1%} over {result['epochs']} epochs"
    for split, metrics in result.get("metrics", {}).items():
        line += f"; {split} accuracy {metrics['accuracy']:.1%}"
    return f"{line}. Run dir: {out}"


# ---- the training loop -------------------------------------------------------------------

def train(config: TrainConfig, stages: list[Stage] | None = None, progress: Progress | None = None) -> dict:
    """The one training loop (the paper's recipe, searches and the demo all use it)."""
    dist_info = dist_info_from_env()
    device = pick_device(config.device, dist_info, torch.cuda.device_count())
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # before NCCL starts: DDP, NCCL and CUDA RNG use the current device
    init_distributed(dist_info, device)
    try:
        return _train(config, stages, progress, device, dist_info)
    except torch.cuda.OutOfMemoryError:
        raise ValueError(f"out of GPU memory at batch size {config.batch_size}; "
                         f"try --batch-size {max(1, config.batch_size // 2)}") from None
    finally:
        shutdown(dist_info)


def _train(config: TrainConfig, stages: list[Stage] | None, progress: Progress | None,
           device: torch.device, dist_info: DistInfo) -> dict:
    out = Path(config.out)
    options = config.target_options()
    options.check()  # before reading anything: a flag the target ignores is a mistake in the command
    _seed_everything(config)
    manifest, classes = read_dataset(config.dataset)
    train_rows, dev_rows = split_rows(manifest, "train"), _dev_rows(manifest)
    model_config = config.model_config(classes)
    # Every rank runs the checks below, so a refusal stops all of them and none is left waiting.
    saved = _read_last(out) if config.resume else None
    if saved is None and (out / "last.pt").exists():
        raise ValueError(f"{out} already holds a run; use --resume to continue it or choose another --out")
    if saved is not None:
        _check_same_model(saved, model_config, out)
        _check_same_target(saved, options, out)
    dev_shard = _dev_shard(dev_rows, dist_info)
    train_targets, dev_targets = _targets(train_rows, classes, options), build_targets(dev_shard, classes, options)
    # A resumed run takes its weights from last.pt: no need for the ImageNet file.
    model = build_model(replace(model_config, pretrained=config.pretrained and saved is None))
    stages = stages or (load_schedule(config.schedule) if config.schedule else
                        paper_schedule(model, config.epochs_per_stage))
    check_schedule(stages, model)
    if len(train_rows) < config.batch_size:
        raise ValueError(f"the train split has {len(train_rows)} images, fewer than the batch size {config.batch_size}")
    facts = {"schedule": schedule_to_dicts(stages), "dataset_manifest_sha256": _manifest_sha256(config.dataset)}
    state, history, optimizer_state = TrainState(), [], None
    if saved is not None:
        _check_same_run(saved, facts, out)
        state, history, optimizer_state = _restore(saved, model, device)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    loader, sampler = _train_loader(config, train_rows, dist_info, device, len(classes))
    dev_loader = _dev_loader(config, dev_shard, dist_info, device)
    weights = _class_weights(train_rows, device, len(classes)) if config.class_weighted else None
    loss_fn = TargetLoss.for_targets(train_targets.table, options, weights, device)
    dev_loss_fn = TargetLoss.for_targets(dev_targets.table, options, weights, device)
    meta = _run_meta(config, facts, classes, dist_info, device, previous=out / "run.json" if config.resume else None)
    meta["target"] = {"options": options.describe(), "train_images": train_targets.counts(),
                      "notes": train_targets.notes}
    if dist_info.is_main:
        if options.target != "onehot":
            print(f"targets: {options.describe()}: {train_targets.summary()}", flush=True)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "run.json", meta)
    total_epochs = sum(s.epochs for s in stages)
    epochs_this_call = 0
    while state.stage < len(stages):
        stage = stages[state.stage]
        optimizer = _optimizer_for(model, stage)
        runner = _wrap(model, config, dist_info, device)  # after freezing: DDP syncs only trainable params
        if optimizer_state is not None:
            optimizer.load_state_dict(optimizer_state)
            optimizer_state = None
        while state.stage_epoch < stage.epochs:
            if config.stop_after and epochs_this_call >= config.stop_after:
                return {"stopped": True, "state": asdict(state)}
            sampler.set_epoch(state.global_epoch)
            loader.generator.manual_seed(config.seed * 100_003 + state.global_epoch)
            started = time.perf_counter()
            train_loss, train_acc, seen = _train_epoch(runner, loader, optimizer, loss_fn, config, device,
                                                       dist_info, f"{stage.name} {state.stage_epoch + 1}/{stage.epochs}")
            dev = _dev_epoch(model, dev_loader, dev_loss_fn, config, device, dist_info, num_classes=len(classes))
            seconds = time.perf_counter() - started
            epochs_this_call += 1
            history.append(_history_row(state, stage, train_loss, train_acc, dev, seconds, seen, classes,
                                        target=options.describe()))
            improved = _advance(state, stage, dev["acc"], config.patience)
            if dist_info.is_main:
                _save_epoch(out, model, config, classes, stage, state, optimizer, history, improved, facts, device)
            barrier(dist_info)
            if progress:
                progress(state.global_epoch / total_epochs,
                         f"epoch {state.global_epoch}/{total_epochs}: dev accuracy {dev['acc']:.1%}")
            if state.stage_epoch == 0:
                break  # stage finished (possibly early); a new optimizer for the next one
    meta.update(finished=_now(), best_dev_acc=state.best_dev_acc, epochs=state.global_epoch)
    result = {"best_dev_acc": state.best_dev_acc, "epochs": state.global_epoch, "out": str(out)}
    if dist_info.is_main:
        write_json(out / "run.json", meta)
    if config.evaluate:  # sharded over the processes, gathered and written by rank 0
        metrics = evaluate_run(out, config.dataset, splits=tuple(config.eval_split.split(",")),
                               batch_size=max(1, config.batch_size // dist_info.world_size),
                               workers=min(config.workers, 2), device=str(device),
                               shard=(dist_info.rank, dist_info.world_size), gather=gather_to_main(dist_info))
        if metrics is not None:
            result["metrics"] = metrics["splits"]
    return result


def _advance(state: TrainState, stage: Stage, dev_acc: float, patience: int) -> bool:
    """Count the finished epoch; move to the next stage when this one is done or has
    stopped improving for `patience` epochs. True if dev accuracy is the best so far."""
    state.stage_epoch += 1
    state.global_epoch += 1
    improved = dev_acc > state.best_dev_acc
    state.best_dev_acc = max(state.best_dev_acc, dev_acc)
    state.stale_epochs = 0 if dev_acc > state.stage_best else state.stale_epochs + 1
    state.stage_best = max(state.stage_best, dev_acc)
    if state.stage_epoch >= stage.epochs or (patience and state.stale_epochs >= patience):
        state.stage, state.stage_epoch, state.stage_best, state.stale_epochs = state.stage + 1, 0, -1.0, 0
    return improved


def _wrap(model: nn.Module, config: TrainConfig, info: DistInfo, device: torch.device) -> nn.Module:
    runner: nn.Module = model
    if info.enabled:
        runner = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(runner) if config.compile else runner


def _dev_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    if not (manifest["split"] == "dev").any():
        raise ValueError("the dataset has no dev split; re-run training.prepare with a dev share, e.g. --split 90/5/5")
    return split_rows(manifest, "dev")


def _seed_everything(config: TrainConfig) -> None:
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def _train_loader(config: TrainConfig, rows: pd.DataFrame, info: DistInfo, device: torch.device, num_classes: int):
    transform = train_transform(config.input_size) if config.augment else eval_transform(config.input_size)
    sampler = GlobalBatchSampler(rows["label_idx"].tolist(), config.batch_size, seed=config.seed, rank=info.rank,
                                 world_size=info.world_size, balanced=config.balanced_sampler,
                                 num_classes=num_classes)
    # Workers are seeded from this generator, re-seeded every epoch, so augmentation
    # is a function of (seed, epoch) and --resume repeats it exactly. That is why they
    # are not persistent: a persistent worker is seeded once and would carry its random
    # state from epoch to epoch.
    loader = DataLoader(ImageDataset(rows, transform, config.input_size), batch_sampler=sampler,
                        num_workers=config.workers, pin_memory=device.type == "cuda",
                        prefetch_factor=PREFETCH_BATCHES if config.workers else None,
                        generator=torch.Generator())
    return loader, sampler


def _dev_shard(rows: pd.DataFrame, info: DistInfo) -> pd.DataFrame:
    """This process's dev images; no padding: the gathered sums are exact. Positions in it are the
    loader's row indices (the dev targets are built on it)."""
    return rows.iloc[info.rank::info.world_size].reset_index(drop=True)


def _dev_loader(config: TrainConfig, shard: pd.DataFrame, info: DistInfo, device: torch.device) -> DataLoader:
    return DataLoader(ImageDataset(shard, eval_transform(config.input_size), config.input_size),
                      batch_size=max(1, config.batch_size // info.world_size), num_workers=min(config.workers, 2),
                      pin_memory=device.type == "cuda", persistent_workers=config.workers > 0,
                      prefetch_factor=PREFETCH_BATCHES if config.workers else None)


class TargetLoss:
    """Per-image loss towards the run's targets (emotion_core.targets), one row per loader position:

        loss_i = (1 - mix) · H(t_i, p_i) + mix · H(e_y, p_i),   H(t, p) = -sum_k w_k t_k log p_k

    p = softmax(logits), w the class weights (1 without --class-weighted). Cross-entropy to a soft target
    differs from KL(t || p) only by the target's entropy, a constant, so both have the same gradient.
    Without a table (--target onehot) it is exactly nn.CrossEntropyLoss(weight, reduction='none').
    The table stays on the training device and is indexed by the batch's row positions there: no read-back."""

    def __init__(self, table: torch.Tensor | None, weight: torch.Tensor | None = None, mix: float = 0.0):
        self.table, self.weight, self.mix = table, weight, mix

    @classmethod
    def for_targets(cls, table: np.ndarray, options: TargetOptions, weight: torch.Tensor | None,
                    device: torch.device) -> "TargetLoss":
        soft = None if options.target == "onehot" else torch.as_tensor(table, dtype=torch.float32, device=device)
        return cls(soft, weight, options.mix)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            return F.cross_entropy(logits, labels, weight=self.weight, reduction="none")  # (B,)
        soft = F.cross_entropy(logits, self.table[rows], weight=self.weight, reduction="none")  # (B,)
        if not self.mix:
            return soft
        hard = F.cross_entropy(logits, labels, weight=self.weight, reduction="none")
        return (1.0 - self.mix) * soft + self.mix * hard


def _targets(rows: pd.DataFrame, classes: ClassSet, options: TargetOptions):
    """The train images' targets; --target votes on images none of which has votes is refused."""
    targets = build_targets(rows, classes, options)
    if options.target == "votes" and (targets.source == ONE_HOT).all():
        raise ValueError("--target votes: no train image has votes (neither votes_<class> columns for every class "
                         "nor agree/disagree counts); train with --target onehot or --target smoothed")
    return targets


def _class_weights(rows: pd.DataFrame, device: torch.device, num_classes: int) -> torch.Tensor:
    counts = np.bincount(rows["label_idx"], minlength=num_classes).astype(float)
    weights = counts.sum() / (num_classes * np.maximum(counts, 1))
    return torch.tensor(weights, dtype=torch.float32, device=device)


def _optimizer_for(model: nn.Module, stage: Stage) -> torch.optim.Adam:
    """Freeze everything, then unfreeze the stage's groups, one Adam param group each."""
    for param in model.parameters():
        param.requires_grad_(False)
    groups, claimed = [], set()
    for group in stage.trainable:
        params = [p for _, p in parameters_in_groups(model, [group]) if id(p) not in claimed]
        claimed.update(id(p) for p in params)
        for param in params:
            param.requires_grad_(True)
        if params:
            groups.append({"params": params, "lr": stage.lr_of(group), "name": group})
    return torch.optim.Adam(groups)


def _autocast(config: TrainConfig, device: torch.device):
    if device.type != "cuda":
        return contextlib.nullcontext()  # bf16 autocast is for CUDA only (and other types may not know it)
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=config.amp)


def _sum_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


POSTFIX_EVERY = 20  # batches between progress-bar updates


def _train_epoch(runner, loader, optimizer, loss_fn, config, device, info, desc) -> tuple[float, float, int]:
    sums = _train_steps(runner, loader, optimizer, loss_fn, config, device, info, desc)
    # One read of the device per epoch, after the sum over ranks.
    loss_sum, correct, seen = all_reduce_sum(sums, info).tolist()
    return loss_sum / max(seen, 1), correct / max(seen, 1), int(seen)


BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _freeze_frozen_batchnorm(runner: nn.Module) -> None:
    """Batch norms whose parameters are all frozen back to eval mode (as timm and detectron do):
    in train mode their running statistics would drift with every batch of a head-only or
    partial stage, though the stage means to keep that part of the network as it is.
    runner.modules() reaches through DistributedDataParallel's .module and torch.compile's
    ._orig_mod. A batch norm without parameters (affine=False) follows its model's mode."""
    for module in runner.modules():
        params = list(module.parameters(recurse=False))
        if isinstance(module, BATCHNORMS) and params and not any(p.requires_grad for p in params):
            module.eval()


def _train_steps(runner, loader, optimizer, loss_fn, config, device, info, desc) -> torch.Tensor:
    """One epoch of optimizer steps; returns (loss sum, correct, images) on `device`.

    Nothing here reads a value back from the device (no .item(), no .cpu()): each read
    would make the CPU wait for the GPU every step instead of queueing the next one."""
    runner.train()
    _freeze_frozen_batchnorm(runner)
    sums = torch.zeros(3, dtype=_sum_dtype(device), device=device)
    bar = tqdm(loader, desc=desc, unit="batch", disable=not info.is_main, leave=False)
    started, queued = time.perf_counter(), 0
    for step, (images, labels, rows, ok) in enumerate(bar, start=1):
        images = images.to(device, non_blocking=True)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(device, non_blocking=True)
        rows = rows.to(device, non_blocking=True)  # positions in the loader's table: they pick the targets
        ok = ok.to(device, non_blocking=True).float()
        with _autocast(config, device):
            logits = runner(images)
        losses = loss_fn(logits.float(), labels, rows) * ok  # unreadable files count for nothing
        loss = losses.sum() / labels.numel()  # DDP averages this over ranks: the global batch mean
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            hits = (logits.argmax(1) == labels).float() * ok
            sums += torch.stack([losses.detach().sum(), hits.sum(), ok.sum()]).to(sums.dtype)
        queued += len(labels)  # a host count: images handed to the device so far
        if step % POSTFIX_EVERY == 0:
            bar.set_postfix(img_s=f"{queued * info.world_size / (time.perf_counter() - started):.1f}", refresh=False)
    return sums


@torch.no_grad()
def _dev_epoch(model, loader, loss_fn, config, device, info, num_classes: int = NUM_CLASSES) -> dict:
    """Dev loss, accuracy and recall per class (num_classes: the run's; FI's eight by default)."""
    n = num_classes
    sums = all_reduce_sum(_dev_sums(model, loader, loss_fn, config, device, num_classes=n), info).cpu()
    images = max(float(sums[1]), 1.0)
    correct, support = sums[2:2 + n], sums[2 + n:]
    recall = torch.where(support > 0, correct / support.clamp_min(1), torch.zeros_like(support))
    return {"loss": float(sums[0]) / images, "acc": float(correct.sum()) / images, "recall": recall.tolist()}


@torch.no_grad()
def _dev_sums(model, loader, loss_fn, config, device, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """(loss sum, images, correct per class, support per class) on `device`, with no
    read-back per batch: unreadable images are weighted 0, not dropped (dropping them
    by a mask would make the CPU wait for the number of rows left). The size is fixed
    before the first batch, so every rank reduces a tensor of the same shape."""
    model.eval()
    n = num_classes
    dtype = _sum_dtype(device)
    sums = torch.zeros(2 + 2 * n, dtype=dtype, device=device)
    classes = torch.arange(n, device=device)
    for images, labels, rows, ok in loader:
        images = images.to(device, non_blocking=True)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(device, non_blocking=True)
        rows = rows.to(device, non_blocking=True)
        keep = ok.to(device, non_blocking=True).to(dtype)
        with _autocast(config, device):
            logits = model(images).float()
        hits = (logits.argmax(1) == labels).to(dtype) * keep
        one_hot = (labels[:, None] == classes).to(dtype)  # (B, n); bincount would read its max back
        sums[0] += (loss_fn(logits, labels, rows).to(dtype) * keep).sum()
        sums[1] += keep.sum()
        sums[2:2 + n] += (one_hot * hits[:, None]).sum(0)
        sums[2 + n:] += (one_hot * keep[:, None]).sum(0)
    return sums


def _history_row(state: TrainState, stage: Stage, train_loss, train_acc, dev, seconds, seen,
                 classes: ClassSet, target: str = "onehot") -> dict:
    """The row of the epoch just trained (state not yet advanced past it); dev recall per class.
    The losses are the run's target loss (TargetLoss), on train and dev alike."""
    row = {"stage": stage.name, "stage_index": state.stage,
           "epoch": state.global_epoch + 1, "lr": stage.lr, "target": target, "train_loss": train_loss,
           "train_acc": train_acc, "dev_loss": dev["loss"], "dev_acc": dev["acc"]}
    row.update({f"dev_recall_{e}": r for e, r in zip(classes.names, dev["recall"])})
    row.update(seconds=seconds, images_per_s=seen / seconds if seconds else 0.0)
    return row


def _save_epoch(out: Path, model, config: TrainConfig, classes: ClassSet, stage: Stage, state: TrainState, optimizer,
                history: list[dict], improved: bool, facts: dict, device: torch.device) -> None:
    extra = {"train_config": asdict(config), "stage": stage.name, "epoch": state.global_epoch}
    model_config = config.model_config(classes)
    if improved:
        save_checkpoint(out / "checkpoint.pt", model, model_config, classes, dev_acc=state.best_dev_acc, **extra)
    # last.pt also carries what --resume needs: optimizer, counters, the RNG states of dropout
    # (CPU and the training GPU), the history itself (a kill between two files cannot leave
    # them disagreeing), and the schedule and dataset it must continue with.
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    save_checkpoint(out / "last.pt", model, model_config, classes, train_state=asdict(state),
                    optimizer=optimizer.state_dict() if state.stage_epoch else None,
                    rng=torch.get_rng_state(), cuda_rng=cuda_rng, history=history, **facts, **extra)
    write_csv(out / "history.csv", pd.DataFrame(history))


# ---- resuming ----------------------------------------------------------------------------

def _read_last(out: Path) -> dict:
    path = out / "last.pt"
    if not path.exists():
        raise ValueError(f"{out}: nothing to resume (no last.pt)")
    return read_checkpoint(path)


def _refuse(out: Path, what: str, saved, now) -> NoReturn:
    raise ValueError(f"cannot resume {out}: {what} differs from the saved run ({saved} saved, {now} now); "
                     "resume with the saved settings or train into another --out")


def _architecture_name(model: dict) -> str:
    if model["arch"] != "vgg_small":
        return model["arch"]
    return f"vgg_small {'with' if model.get('batch_norm', True) else 'without'} batch norm"


def _head_name(model: dict) -> str:
    if model.get("head", "paper") == "linear":  # checkpoints from before the head option: paper heads
        return f"linear head fc {model['fc']}"
    return f"fc {model['fc']} dropout {model['dropout']}"


def _check_same_model(saved: dict, wanted: ModelConfig, out: Path) -> None:
    """Before any weights are loaded: a different model would fail with a traceback, or worse, load."""
    model, now = saved["model"], asdict(wanted)
    comparisons = [
        ("the class set", ", ".join(checkpoint_classes(saved).names), ", ".join(wanted.classes)),
        ("the architecture", _architecture_name(model), _architecture_name(now)),
        ("the head", _head_name(model), _head_name(now)),
        ("the input size", model["input_size"], now["input_size"]),
    ]
    for what, saved_value, now_value in comparisons:
        if saved_value != now_value:
            _refuse(out, what, saved_value, now_value)


def _check_same_target(saved: dict, options: TargetOptions, out: Path) -> None:
    """The saved epochs' target (runs from before targets existed trained one-hot): a resumed run keeps it."""
    earlier = saved.get("train_config") or {}
    names = ("target", "spread", "epsilon", "mix")
    saved_options = TargetOptions(**{k: earlier[k] for k in names if k in earlier})
    if saved_options.describe() != options.describe():
        _refuse(out, "the training target", saved_options.describe(), options.describe())


def _check_same_run(saved: dict, facts: dict, out: Path) -> None:
    """The schedule and the dataset must be the ones the saved epochs were trained with."""
    earlier = _saved_facts(saved, out)
    stages = earlier.get("schedule")
    if stages is not None:
        _check_same_schedule(stages, facts["schedule"], out)
    sha = earlier.get("dataset_manifest_sha256")
    if sha is not None and sha != facts["dataset_manifest_sha256"]:
        _refuse(out, "the dataset", f"manifest sha256 {sha[:12]}", f"{facts['dataset_manifest_sha256'][:12]}")


def _saved_facts(saved: dict, out: Path) -> dict:
    """From last.pt; runs saved before last.pt held them have them in run.json."""
    keys = ("schedule", "dataset_manifest_sha256")
    if all(k in saved for k in keys):
        return {k: saved[k] for k in keys}
    return read_json(out / "run.json")


def _check_same_schedule(saved: list[dict], now: list[dict], out: Path) -> None:
    names_saved, names_now = [s["name"] for s in saved], [s["name"] for s in now]
    if names_saved != names_now:
        _refuse(out, "the schedule", f"stages {names_saved}", names_now)
    for number, (a, b) in enumerate(zip(saved, now), start=1):
        for key in ("trainable", "lr", "group_lrs"):
            if a.get(key) != b.get(key):
                _refuse(out, "the schedule", f"stage {number} ({a['name']}) {key} {a.get(key)}", b.get(key))
    epochs_saved, epochs_now = [s["epochs"] for s in saved], [s["epochs"] for s in now]
    if epochs_saved != epochs_now:
        _refuse(out, "the number of epochs per stage", ", ".join(map(str, epochs_saved)),
                ", ".join(map(str, epochs_now)))


def _restore(saved: dict, model: nn.Module, device: torch.device) -> tuple[TrainState, list[dict], dict | None]:
    """Weights, RNG states, counters and history from last.pt (already checked to match)."""
    model.load_state_dict(saved["state_dict"])
    torch.set_rng_state(saved["rng"])
    if device.type == "cuda" and saved.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
    return TrainState(**saved["train_state"]), list(saved["history"]), saved.get("optimizer")


def _manifest_sha256(dataset: str) -> str:
    return file_sha256(Path(dataset) / "manifest.parquet")


def _run_meta(config: TrainConfig, facts: dict, classes: ClassSet, info: DistInfo, device: torch.device,
              previous: Path | None = None) -> dict:
    """run.json; a resumed run keeps its first start time and lists each resumption."""
    earlier = read_json(previous) if previous else {}
    return {
        "config": asdict(config),
        "schedule": facts["schedule"],
        "classes": classes.to_dict(),
        "dataset_manifest_sha256": facts["dataset_manifest_sha256"],
        "code_version": _code_version(),
        "hardware": {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
                     "world_size": info.world_size, "cpu_count": os.cpu_count(),
                     "torch": torch.__version__, "python": sys.version.split()[0]},
        "started": earlier.get("started", _now()),
        "resumed": earlier.get("resumed", []) + ([_now()] if earlier else []),
    }


def _code_version() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


if __name__ == "__main__":
    run_main(main, get_args_parser().parse_args())
