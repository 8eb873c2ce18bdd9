"""Training images/s for head-only and full fine-tuning, and data loading alone.

  python bench/train_throughput.py          # GPU: VGG19 224x224 batch 64 bf16; CPU: VGG19 112x112 batch 8

Prints which of the three is the limit; on a GPU also the fraction of its bf16 peak reached.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from emotion_core.dataset import ImageDataset  # noqa: E402
from emotion_core.demo_data import generate  # noqa: E402
from emotion_core.labels import EMOTION_INDEX  # noqa: E402
from emotion_core.model import ModelConfig, build_model  # noqa: E402
from emotion_core.transforms import train_transform  # noqa: E402
from training.schedule import Stage  # noqa: E402
from training.train import _optimizer_for  # noqa: E402

VGG19_GFLOP_224 = 19.6  # forward multiply-adds x2 per image at 224x224
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def get_args_parser() -> argparse.ArgumentParser:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224 if cuda else 112, help="input size")
    parser.add_argument("--batch-size", type=int, default=64 if cuda else 8, help="batch size")
    parser.add_argument("--steps", type=int, default=20 if cuda else 4, help="timed steps per mode")
    parser.add_argument("--workers", type=int, default=8 if cuda else 2, help="DataLoader workers")
    return parser


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
            rows.append({"path": str(path), "label_idx": EMOTION_INDEX[item.label]})
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


def main(args: argparse.Namespace) -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    model = build_model(ModelConfig(pretrained=False, input_size=args.size)).to(device, memory_format=torch.channels_last)
    images = torch.randn(args.batch_size, 3, args.size, args.size, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 8, (args.batch_size,), device=device)
    head = train_speed(model, Stage("head", ["head"], 1e-4, 1), images, labels, args.steps, device)
    full = train_speed(model, Stage("all", ["all"], 1e-6, 1), images, labels, args.steps, device)
    loading = loading_speed(args.size, args.batch_size, args.workers, args.steps)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"VGG19 {args.size}x{args.size} batch {args.batch_size} on {name}")
    print(f"head-only training:   {head:9.1f} images/s")
    print(f"full fine-tuning:     {full:9.1f} images/s")
    print(f"data loading alone:   {loading:9.1f} images/s ({args.workers} workers)")
    print(f"limit: {'data loading' if loading < min(head, full) else 'compute'} "
          f"(loading / full fine-tuning = {loading / full:.2f})")
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    if peak:
        gflop = VGG19_GFLOP_224 * (args.size / 224) ** 2
        achieved = full * gflop * 3 / 1000  # forward + backward ~ 3x forward
        print(f"full fine-tuning: {achieved:.0f} TFLOP/s = {achieved / peak:.1%} of the {peak:.0f} TFLOP/s bf16 peak")


if __name__ == "__main__":
    main(get_args_parser().parse_args())
