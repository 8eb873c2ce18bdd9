"""Shared fixtures: tiny images, and one demo workspace built once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)


def save_noise_image(path: Path, size=(32, 32), seed: int = 0, fmt: str | None = None) -> Path:
    """A photo-like noisy RGB image (not mistaken for a placeholder)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path, format=fmt)
    return path


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
