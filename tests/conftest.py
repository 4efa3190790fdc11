"""Shared fixtures: a fake /opt/ml made with real files under tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# One OpenMP thread for MXNet, set before any test imports it and inherited by the jobs tests start in
# subprocesses: MXNet's CPU gradient of BilinearResize2D (the heads' upsampling) sums in an order that
# depends on the thread count and timing, so only single-threaded CPU runs repeat to the bit, which the
# determinism and resume tests compare. The product's own default (semseg.threads) is tested on its own.
os.environ.setdefault("OMP_NUM_THREADS", "1")


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
