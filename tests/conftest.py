"""Shared fixtures: a fake /opt/ml made with real files under tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def write_config(base: Path, name: str, content: Any) -> None:
    folder = base / "input" / "config"
    folder.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    (folder / name).write_text(text)


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """A complete, tiny job folder: 8 train and 2 validation 32x32 images of 3 classes."""
    from semseg.example import make_job  # not at import: the container tests' client has no semseg

    return make_job(tmp_path / "ml", images=8, size=32, hyperparameters={"epochs": 1, "mini_batch_size": 4})
