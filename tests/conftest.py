"""Shared fixtures: tiny images, and one demo workspace built once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def save_noise_image(path: Path, size=(32, 32), seed: int = 0, fmt: str | None = None) -> Path:
    """A photo-like noisy RGB image (not mistaken for a placeholder)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def write_demo_dataset(out: Path, per_class: int, *, size: int, seed: int, split: tuple[float, float, float]) -> Path:
    """A small dataset dir of demo images (emotion_core.demo_data), per_class images of each emotion."""
    from emotion_core.dataset import write_dataset
    from emotion_core.demo_data import generate

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, item in enumerate(generate(per_class, size=size, seed=seed, split=split)):
        item.image.save(out / f"{i}.png")
        rows.append({"image_id": str(i), "path": f"{i}.png", "label": item.label, "agree": item.agree,
                     "disagree": item.disagree, "split": item.split})
    write_dataset(out, pd.DataFrame(rows), {})
    return out


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory) -> Path:
    """The real demo build (default size) in a throwaway workspace."""
    from training.demo import build_demo

    home = tmp_path_factory.mktemp("workspace")
    old = os.environ.get("EMOLENS_HOME")
    os.environ["EMOLENS_HOME"] = str(home)
    try:
        result = build_demo()
    finally:
        if old is None:
            os.environ.pop("EMOLENS_HOME", None)
        else:
            os.environ["EMOLENS_HOME"] = old
    assert result["metrics"]["test"]["n_images"] > 0
    return home


@pytest.fixture
def demo_env(demo_workspace, monkeypatch) -> Path:
    monkeypatch.setenv("EMOLENS_HOME", str(demo_workspace))
    return demo_workspace


def open_page(page: str) -> "AppTest":
    """The dashboard run once, then switched to `page`: no exception and no error element on it."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at
