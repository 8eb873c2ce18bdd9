"""The paper's architecture search: FC layers x learning rate x dropout (x backbone), one run dir each.

  python -m training.search --dataset workspace/datasets/fi --out workspace/search
  python -m training.search --dataset ... --out ... --configs my_grid.yaml
  python -m training.search --dataset ... --out ... --arch vgg19,resnet50,convnext_tiny,vit_b_16

The backbone (and head) is a grid dimension: every config is trained on each --arch, unless
the config names its own `arch`. With --head linear the FC and dropout dimensions collapse
(torchvision's own head has neither).

Each config trains through the one training loop, the head alone (--schedule head) or the
paper's staged unfreezing (--schedule paper); the results table (train accuracy, dev accuracy, FC layers,
learning rate, dropout, parameters) is written as results.csv and results.md.
"""
from __future__ import annotations

import argparse
import itertools
from dataclasses import replace
from pathlib import Path

import pandas as pd
import yaml

from emotion_core.fileio import write_csv, write_text
from emotion_core.labels import FI_CLASSES, ClassSet, read_classes
from emotion_core.model import ARCHITECTURES, HEADS, build_model
from training.cli import run_main
from training.schedule import Stage, paper_schedule
from training.train import TrainConfig, train

PAPER_GRID = {"fc": ["8", "8x8", "16x8"], "lr": [1e-4, 1e-5, 1e-6], "dropout": [0.4, 0.5, 0.6]}
CONFIG_KEYS = ("fc", "lr", "dropout")
OPTIONAL_KEYS = ("arch", "head")  # a config may fix its backbone and head; otherwise --arch/--head


def paper_grid(num_classes: int = len(FI_CLASSES)) -> list[dict]:
    """The paper's 27 configs; on a dataset of another class count the heads end in that
    count instead of 8 (8x8 -> 8x6 for six classes), the hidden sizes unchanged."""
    configs = [dict(zip(CONFIG_KEYS, values)) for values in itertools.product(*PAPER_GRID.values())]
    for config in configs:
        config["fc"] = "x".join(config["fc"].split("x")[:-1] + [str(num_classes)])
    return configs


def load_configs(path: str | Path) -> list[dict]:
    """A YAML/JSON list of {fc, lr, dropout} mappings, each optionally with arch and head."""
    data = yaml.safe_load(Path(path).read_text())
    valid = CONFIG_KEYS + OPTIONAL_KEYS
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a list of configs with keys {', '.join(CONFIG_KEYS)}")
    configs = []
    for number, entry in enumerate(data, start=1):
        unknown = [k for k in entry if k not in valid] if isinstance(entry, dict) else ["(not a mapping)"]
        if unknown:
            raise ValueError(f"{Path(path).name} config {number}: unknown key {unknown[0]!r}; valid: {', '.join(valid)}")
        for key, choices in (("arch", ARCHITECTURES), ("head", HEADS)):
            if key in entry and entry[key] not in choices:
                raise ValueError(f"{Path(path).name} config {number}: unknown {key} {entry[key]!r}; "
                                 f"valid: {', '.join(choices)}")
        configs.append({"fc": str(entry.get("fc", "8")), "lr": float(entry.get("lr", 1e-5)),
                        "dropout": float(entry.get("dropout", 0.5)),
                        **{k: str(entry[k]) for k in OPTIONAL_KEYS if k in entry}})
    return configs


def cross_backbones(configs: list[dict], archs: list[str], head: str, num_classes: int) -> list[dict]:
    """Every config on every backbone (a config naming its arch keeps it). A linear head has
    no hidden layers and no dropout: its configs differ only in learning rate."""
    crossed, seen = [], set()
    for arch in archs:
        for config in configs:
            config = {"arch": arch, "head": head, **config}
            if config["head"] == "linear":
                config.update(fc=str(num_classes), dropout=0.0)
            key = tuple(config[k] for k in ("arch", "head", "fc", "lr", "dropout"))
            if key not in seen:
                seen.add(key)
                crossed.append(config)
    return crossed


def run_name(config: dict) -> str:
    backbone = config.get("arch", "vgg19") + ("_linear" if config.get("head") == "linear" else "")
    return f"{backbone}_fc{config['fc']}_lr{config['lr']:g}_do{config['dropout']:g}"


def stages_for(config: dict, schedule: str, epochs: int, run_config: TrainConfig,
               classes: ClassSet = FI_CLASSES) -> list[Stage]:
    """'head': the head alone at the config's lr; 'paper': the paper's whole schedule with
    the config's lr for the head stage (the other stages keep the paper's rates)."""
    if schedule == "head":
        return [Stage("head", ["head"], config["lr"], epochs)]
    if schedule != "paper":
        raise ValueError(f"unknown search schedule {schedule!r}; valid: head, paper")
    stages = paper_schedule(build_model(replace(run_config, pretrained=False).model_config(classes)), epochs)
    stages[0] = replace(stages[0], lr=config["lr"])
    return stages


def search(base: TrainConfig, configs: list[dict], out: Path, epochs: int, schedule: str = "head") -> pd.DataFrame:
    rows = []
    classes = read_classes(base.dataset)
    for number, config in enumerate(configs, start=1):
        config = {"arch": base.arch, "head": base.head, **config}
        run_config = replace(base, out=str(out / run_name(config)), fc=config["fc"], dropout=config["dropout"],
                             arch=config.get("arch", base.arch), head=config.get("head", base.head), evaluate=False)
        print(f"[{number}/{len(configs)}] {run_name(config)}")
        train(run_config, stages_for(config, schedule, epochs, run_config, classes))
        history = pd.read_csv(Path(run_config.out) / "history.csv")
        best = history.loc[history["dev_acc"].idxmax()]
        model = build_model(replace(run_config, pretrained=False).model_config(classes))
        parameters = sum(p.numel() for p in model.parameters())
        rows.append({"Train Accuracy": best["train_acc"], "Dev Accuracy": best["dev_acc"],
                     "Backbone": run_config.arch, "Head": run_config.head, "FC Layers": config["fc"],
                     "Learning Rate": config["lr"], "Dropout": config["dropout"], "Parameters": parameters,
                     "Run": run_name(config)})
    table = pd.DataFrame(rows)
    write_csv(out / "results.csv", table)
    write_text(out / "results.md", to_markdown(table))
    return table


def to_markdown(table: pd.DataFrame) -> str:
    header = "| Train Accuracy | Dev Accuracy | Backbone | Head | FC Layers | Learning Rate | Dropout | Parameters | Run |"
    lines = [header, "|" + "---|" * 9]
    best = table["Dev Accuracy"].idxmax() if len(table) else None
    for index, row in table.iterrows():
        mark = "**" if index == best else ""
        lines.append(f"| {mark}{row['Train Accuracy']:.1%}{mark} | {mark}{row['Dev Accuracy']:.1%}{mark} | "
                     f"{row['Backbone']} | {row['Head']} | {row['FC Layers']} | {row['Learning Rate']:g} | {row['Dropout']:g} | {row['Parameters']:,} | {row['Run']} |")
    return "\n".join(lines) + "\n"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Grid search over FC layers, learning rate and dropout.")
    parser.add_argument("--dataset", required=True, help="dataset dir with train and dev splits")
    parser.add_argument("--out", required=True, help="folder for one run dir per config and the results table")
    parser.add_argument("--configs", default=None, help="YAML/JSON list of {fc, lr, dropout} (fc ending in the number "
                        "of classes); default: the paper's 27-config grid, heads ending in the dataset's class count")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per config, or per stage with --schedule paper (default 3)")
    parser.add_argument("--schedule", default="head", choices=["head", "paper"],
                        help="head: train the head alone (fast, the default); paper: the paper's staged unfreezing")
    parser.add_argument("--arch", default=["vgg19"], type=_arch_list, help="backbone(s), comma-separated, a grid "
                        f"dimension: {', '.join(ARCHITECTURES)} (default vgg19)")
    parser.add_argument("--head", default="paper", choices=HEADS, help="paper: dropout + FC layers (default); "
                        "linear: torchvision's own head (the grid's FC and dropout do not apply)")
    parser.add_argument("--input-size", type=int, default=224, help="input size (default 224)")
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_false", help="random initial weights")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers (default 4)")
    parser.add_argument("--device", default="", help="torch device (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    return parser


def _arch_list(text: str) -> list[str]:
    archs = [a.strip() for a in text.split(",") if a.strip()]
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if unknown or not archs:
        raise argparse.ArgumentTypeError(f"unknown architecture {(unknown or [text])[0]!r}; "
                                         f"valid: {', '.join(ARCHITECTURES)}")
    return archs


def main(args: argparse.Namespace) -> pd.DataFrame:
    num_classes = len(read_classes(args.dataset))
    configs = load_configs(args.configs) if args.configs else paper_grid(num_classes)
    configs = cross_backbones(configs, args.arch, args.head, num_classes)
    base = TrainConfig(dataset=args.dataset, out="", arch=args.arch[0], head=args.head, input_size=args.input_size,
                       pretrained=args.pretrained, batch_size=args.batch_size, workers=args.workers,
                       device=args.device, seed=args.seed)
    table = search(base, configs, Path(args.out), args.epochs, args.schedule)
    print(to_markdown(table))
    return table


if __name__ == "__main__":
    run_main(main, get_args_parser().parse_args())
