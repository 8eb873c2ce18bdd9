"""The workspace folder: datasets, runs and the default tag database live here."""
from __future__ import annotations

import os
from pathlib import Path


def workspace_dir() -> Path:
    """$EMOLENS_HOME, default ./workspace."""
    return Path(os.environ.get("EMOLENS_HOME") or "workspace").resolve()


def datasets_dir() -> Path:
    return workspace_dir() / "datasets"


def runs_dir() -> Path:
    return workspace_dir() / "runs"
