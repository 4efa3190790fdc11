"""Shared fixtures: a fake /opt/ml made with real files under tmp_path."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.settings import EXPORT_OFF

# One OpenMP thread for MXNet, set before any test imports it and inherited by the jobs tests start in
# subprocesses: MXNet's CPU gradient of BilinearResize2D (the heads' upsampling) sums in an order that
# depends on the thread count and timing, so only single-threaded CPU runs repeat to the bit, which the
# determinism and resume tests compare. The product's own default (semseg.threads) is tested on its own.
os.environ.setdefault("OMP_NUM_THREADS", "1")
for _name, _value in EXPORT_OFF.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(autouse=True)
def _weights_removed_after_each_test(tmp_path: Path) -> Iterator[None]:
    """A trained job leaves ~400 MB of weights; pytest keeps every test's folder of the last three sessions, which
    filled the disk. Files over 8 MB go when the test ends; logs, configs and small files stay for debugging."""
    yield
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size > 8 * 2**20:
            path.unlink()


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """A complete, tiny job folder: 8 train and 2 validation 32x32 images of 3 classes."""
    from semseg.example import make_job  # not at import: the container tests' client has no semseg

    return make_job(tmp_path / "ml", images=8, size=32, hyperparameters={"epochs": 1, "mini_batch_size": 4})
