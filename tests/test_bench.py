"""Benchmarks measure what they say (figures are not tested: only what the figures rest on)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted(p.name for p in (ROOT / "bench").glob("*.py") if p.name not in ("__init__.py", "synthetic_run.py"))


def test_the_bench_programs_are_all_listed():
    assert PROGRAMS == ["attributes_throughput.py", "browser_latency.py", "dashboard_latency.py",
                        "embedding_map.py", "eval_throughput.py", "map_browser.py", "neighbours_latency.py",
                        "train_throughput.py"]


@pytest.mark.parametrize("program", PROGRAMS)
def test_every_bench_program_takes_help(program):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / program), "--help"], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage: ") and "--" in result.stdout.split("options:")[-1]


def test_vgg19_training_flops_are_counted_not_assumed():
    from bench.train_throughput import STAGES, training_step_flops
    from emotion_core.model import ModelConfig

    config = ModelConfig(arch="vgg19", input_size=224, pretrained=False)
    forward, full = training_step_flops(config, STAGES["full fine-tuning"])
    assert forward == pytest.approx(39.0e9, rel=0.01)  # 19.6 G multiply-adds = 39 GFLOP at 224x224
    assert full == pytest.approx(3 * forward, rel=0.01)  # backward: gradients of inputs and of weights
    _, head_only = training_step_flops(config, STAGES["head-only training"])
    assert head_only == pytest.approx(forward, rel=0.01)  # frozen convs: no backward through them
    forward_112, _ = training_step_flops(ModelConfig(arch="vgg19", input_size=112, pretrained=False),
                                         STAGES["full fine-tuning"])
    assert forward_112 == pytest.approx(forward / 4, rel=0.02)  # convs scale with the pixels


def test_the_latency_run_gives_every_prediction_its_own_image_file(tmp_path):
    import pandas as pd

    from bench.synthetic_run import make_run

    run = make_run(tmp_path, n=40, distinct_images=None, image_size=(50, 40))
    paths = pd.read_parquet(run / "predictions.parquet")["path"]
    assert paths.is_unique and all(Path(p).is_file() for p in paths)
