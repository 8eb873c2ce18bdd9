"""Training images/s for head-only and full fine-tuning, and data loading alone.

  python bench/train_throughput.py          # GPU: VGG19 224x224 batch 64 bf16; CPU: VGG19 112x112 batch 8
  python bench/train_throughput.py --size 64 --batch-size 4 --steps 2 --workers 0   # a quick check

Prints which of the three is the limit, and the FLOP/s each training mode reaches. FLOPs are
counted by torch.utils.flop_counter.FlopCounterMode on one real training step of the same model
(one multiply-add = 2 FLOPs; VGG19 forward at 224x224 is about 39 GFLOP, 19.6 G multiply-adds;
full fine-tuning about 3x forward, head-only about 1x, as the frozen convs need no backward).
On a GPU with a known peak it also prints the fraction of the dense bf16 peak reached.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from emotion_core.dataset import ImageDataset  # noqa: E402
from emotion_core.demo_data import generate  # noqa: E402
from emotion_core.labels import FI_CLASSES  # noqa: E402
from emotion_core.model import ModelConfig, build_model  # noqa: E402
from emotion_core.transforms import train_transform  # noqa: E402
from training.schedule import Stage  # noqa: E402
from training.train import _optimizer_for  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks from the vendor data sheets; the first name found wins.
BF16_PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
STAGES = {"head-only training": Stage("head", ["head"], 1e-4, 1),
          "full fine-tuning": Stage("all", ["all"], 1e-6, 1)}


def get_args_parser() -> argparse.ArgumentParser:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="vgg19", choices=["vgg19", "vgg_small"], help="architecture (default vgg19)")
    parser.add_argument("--size", type=int, default=224 if cuda else 112, help="input size (GPU 224, CPU 112)")
    parser.add_argument("--batch-size", type=int, default=64 if cuda else 8, help="batch size (GPU 64, CPU 8)")
    parser.add_argument("--steps", type=int, default=20 if cuda else 4, help="timed steps per mode (GPU 20, CPU 4)")
    parser.add_argument("--workers", type=int, default=8 if cuda else 2, help="DataLoader workers (GPU 8, CPU 2)")
    return parser


def training_step_flops(config: ModelConfig, stage: Stage, batch_size: int = 1) -> tuple[float, float]:
    """(forward, forward + backward) FLOPs of one training step per image, counted by
    FlopCounterMode on a model on the meta device (shapes only: no memory, no arithmetic)."""
    with torch.device("meta"):
        model = build_model(dataclasses.replace(config, pretrained=False))
        images = torch.empty(batch_size, 3, config.input_size, config.input_size)
        labels = torch.zeros(batch_size, dtype=torch.long)
    _optimizer_for(model, stage)  # freezes what the stage does not train: no backward through it
    model.train()
    with FlopCounterMode(display=False) as forward:
        model(images)
    with FlopCounterMode(display=False) as step:
        torch.nn.functional.cross_entropy(model(images).float(), labels).backward()
    return forward.get_total_flops() / batch_size, step.get_total_flops() / batch_size


def train_speed(model, stage, images, labels, steps, device) -> float:
    optimizer = _optimizer_for(model, stage)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(model(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(2):
        step()
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * len(images) / (time.perf_counter() - started)


def loading_speed(size, batch_size, workers, steps) -> float:
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for i, item in enumerate(generate(max(4, batch_size * 3 // 8), size=64, seed=0)):
            path = Path(folder) / f"{i}.jpg"
            item.image.resize((500, 375)).save(path, quality=90)  # FI photos are about 500x375 JPEGs
            rows.append({"path": str(path), "label_idx": FI_CLASSES.index[item.label]})
        loader = DataLoader(ImageDataset(pd.DataFrame(rows), train_transform(size), size), batch_size=batch_size,
                            shuffle=True, num_workers=workers, drop_last=True, persistent_workers=workers > 0)
        seen, started = 0, None
        while seen < steps * batch_size:
            for batch in loader:
                if started is None:
                    started, seen = time.perf_counter(), 0  # first batch includes worker start-up
                    continue
                seen += len(batch[0])
        return seen / (time.perf_counter() - started)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_tflops(device_name: str) -> float | None:
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in device_name), None)


def main(args: argparse.Namespace) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    config = ModelConfig(arch=args.arch, pretrained=False, input_size=args.size)
    model = build_model(config).to(device, memory_format=torch.channels_last)
    images = torch.randn(args.batch_size, 3, args.size, args.size, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 8, (args.batch_size,), device=device)
    speeds = {name: train_speed(model, stage, images, labels, args.steps, device) for name, stage in STAGES.items()}
    loading = loading_speed(args.size, args.batch_size, args.workers, args.steps)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    peak = peak_tflops(name)
    print(f"{args.arch} {args.size}x{args.size} batch {args.batch_size} on {name}")
    for mode, speed in speeds.items():
        forward, step = training_step_flops(config, STAGES[mode])
        achieved = speed * step / 1e12
        share = f" = {achieved / peak:.1%} of the {peak:.0f} TFLOP/s dense bf16 peak" if peak else ""
        print(f"{mode + ':':<22}{speed:9.1f} images/s   {step / 1e9:6.1f} GFLOP/image "
              f"({step / forward:.2f}x forward) -> {achieved:.3f} TFLOP/s{share}")
    print(f"{'data loading alone:':<22}{loading:9.1f} images/s ({args.workers} workers)")
    full = speeds["full fine-tuning"]
    print(f"limit: {'data loading' if loading < min(speeds.values()) else 'compute'} "
          f"(loading / full fine-tuning = {loading / full:.2f})")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
