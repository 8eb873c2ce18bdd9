"""The workspace folder: datasets, runs and the default tag database live here (no heavy imports:
every page reads these)."""
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


def tag_database_url() -> str:
    """$EMOLENS_DB_URL (a team's shared database), default a SQLite file in the workspace."""
    return os.environ.get("EMOLENS_DB_URL") or f"sqlite:///{workspace_dir() / 'tags.sqlite'}"
