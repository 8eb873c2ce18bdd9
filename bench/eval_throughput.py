"""Evaluation pass (prediction + Grad-CAM for predicted and true class) against a bare
forward pass of the same model on the same images and batch size.

  python bench/eval_throughput.py                 # VGG19 at 112x112, batch 8 (the issue's setting)
  python bench/eval_throughput.py --arch vgg_small --size 64 --batches 20
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from emotion_core.model import ModelConfig, build_model  # noqa: E402
from emotion_core.predict import Predictor  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vgg19", choices=["vgg19", "vgg_small"], help="architecture")
    parser.add_argument("--size", type=int, default=112, help="input size (default 112)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--batches", type=int, default=6, help="timed batches per method (default 6)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    return parser


def timed(fn, batches) -> float:
    fn(batches[0])  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    for batch in batches:
        fn(batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=args.arch, input_size=args.size, pretrained=False))
    predictor = Predictor(model, args.size, args.device)
    batches = [(torch.randn(args.batch_size, 3, args.size, args.size, device=args.device),
                torch.randint(0, 8, (args.batch_size,), device=args.device)) for _ in range(args.batches)]

    @torch.no_grad()
    def bare(batch):
        return predictor.model(batch[0])

    def evaluation(batch):
        return predictor.evaluate_batch(*batch)

    images = args.batch_size * args.batches
    bare_s, eval_s = timed(bare, batches), timed(evaluation, batches)
    print(f"{args.arch} {args.size}x{args.size} batch {args.batch_size} on {args.device}, "
          f"{torch.get_num_threads()} threads, {images} images")
    print(f"bare forward:                 {images / bare_s:8.2f} images/s")
    print(f"prediction + 2x Grad-CAM:     {images / eval_s:8.2f} images/s")
    print(f"ratio (eval time / forward):  {eval_s / bare_s:8.3f}   (goal <= 1.3)")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
