"""Evaluation pass (prediction + Grad-CAM for predicted and true class) against a bare
forward pass of the same model on the same images and batch size.

  python bench/eval_throughput.py                 # VGG19 at 112x112, batch 8 (the issue's setting)
  python bench/eval_throughput.py --arch vgg_small --size 64 --batches 20
  python bench/eval_throughput.py --arch vit_b_16 --size 112        # any backbone (--head linear for its own head)
  python bench/eval_throughput.py --size 224 --batch-size 64 --batches 20   # on a GPU

The goal is an evaluation at most 1.1x a bare forward pass for every backbone: the trunk runs
once, only the tail after the Grad-CAM layer runs per target (ViT: the last block for the
class token alone, see emotion_core.backbones).

FLOPs are counted by torch.utils.flop_counter.FlopCounterMode on the same calls, run on the
meta device (shapes only): one multiply-add = 2 FLOPs, so VGG19's forward pass at 224x224 is
about 39 GFLOP. The evaluation's count includes the two Grad-CAM backward passes through
the layers after the last conv. On a GPU with a known peak the achieved FLOP/s is also given
as a fraction of the dense bf16 peak (the evaluation itself runs in float32).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.train_throughput import peak_tflops  # noqa: E402
from emotion_core.model import ARCHITECTURES, HEADS, ModelConfig, build_model  # noqa: E402
from emotion_core.predict import Predictor  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vgg19", choices=ARCHITECTURES, help="backbone (default vgg19)")
    parser.add_argument("--head", default="paper", choices=HEADS, help="head (default paper: one FC layer of 8)")
    parser.add_argument("--size", type=int, default=112, help="input size (default 112)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per method (default 6)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (bare, evaluation), alternating; the "
                        "fastest round of each counts, so a busy shared machine skews neither (default 3)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    return parser


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, batches, device: torch.device) -> float:
    fn(batches[0])  # warm-up
    sync(device)
    started = time.perf_counter()
    for batch in batches:
        fn(batch)
    sync(device)  # results stay on the device: wait for the last of them
    return time.perf_counter() - started


class _WholeProgram:
    """Stands in for FlopCounterMode's module tracker: every FLOP counts under "Global"."""
    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False


class TotalFlopCounter(FlopCounterMode):
    """FlopCounterMode, same formulas, without the per-module breakdown: the module
    tracker's backward hooks refuse the autograd.grad that Grad-CAM runs on a leaf tensor."""

    def __init__(self):
        super().__init__(display=False)
        self.mod_tracker = _WholeProgram()


def flops_per_image(config: ModelConfig, batch_size: int) -> tuple[float, float]:
    """(bare forward, evaluation) FLOPs per image, counted on the meta device."""
    with torch.device("meta"):
        model = build_model(config)
        images = torch.empty(batch_size, 3, config.input_size, config.input_size)
        labels = torch.zeros(batch_size, dtype=torch.long)
    predictor = Predictor(model, config.input_size, "meta")
    with TotalFlopCounter() as bare, torch.no_grad():
        predictor.model(images)
    with TotalFlopCounter() as evaluation:
        predictor.evaluate_batch(images, labels)
    return bare.get_total_flops() / batch_size, evaluation.get_total_flops() / batch_size


def main(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    device = torch.device(args.device)
    config = ModelConfig(arch=args.arch, head=args.head, input_size=args.size, pretrained=False)
    predictor = Predictor(build_model(config), args.size, device)
    batches = [(torch.randn(args.batch_size, 3, args.size, args.size, device=device),
                torch.randint(0, 8, (args.batch_size,), device=device)) for _ in range(args.batches)]

    @torch.no_grad()
    def bare(batch):
        return predictor.model(batch[0])

    def evaluation(batch):
        return predictor.evaluate_batch(*batch)

    images = args.batch_size * args.batches
    rounds = [(timed(bare, batches, device), timed(evaluation, batches, device)) for _ in range(args.repeats)]
    bare_s, eval_s = min(r[0] for r in rounds), min(r[1] for r in rounds)
    bare_flops, eval_flops = flops_per_image(config, args.batch_size)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    peak = peak_tflops(name) if device.type == "cuda" else None
    print(f"{args.arch} ({args.head} head) {args.size}x{args.size} batch {args.batch_size} on {name}, {images} images, "
          f"best of {args.repeats} alternating rounds")
    for label, seconds, flops in (("bare forward:", bare_s, bare_flops),
                                  ("prediction + 2x Grad-CAM:", eval_s, eval_flops)):
        achieved = images / seconds * flops / 1e12
        share = f" = {achieved / peak:.1%} of the {peak:.0f} TFLOP/s dense bf16 peak" if peak else ""
        print(f"{label:<28}{images / seconds:9.2f} images/s   {flops / 1e9:7.2f} GFLOP/image "
              f"-> {achieved:.3f} TFLOP/s{share}")
    print(f"ratio (eval time / forward):  {eval_s / bare_s:8.3f}   (goal <= 1.1; FLOPs {eval_flops / bare_flops:.3f}x)")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
