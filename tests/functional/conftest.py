"""Run real training jobs in-process on tiny generated data (real MXNet on the CPU)."""

from __future__ import annotations

import ctypes
import gc
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import semseg.engines.mxnet.gluoncv_import  # noqa: F401  # first: GluonCV refuses to import beside torch 2 otherwise
from semseg.cli import main
from semseg.contract.model_folder import ModelFolder, read_model_folder
from semseg.contract.report import METRIC_REGEXES
from semseg.example import make_job
from tests.helpers import CROP, JobOutputs
from tests.settings import EXPORT_OFF


@dataclass
class Run(JobOutputs):
    code: int
    base: Path
    messages: list[str]

    @property
    def log(self) -> str:
        return "\n".join(self.messages)

    def metric(self, name: str) -> list[float]:
        return [float(v) for v in re.findall(METRIC_REGEXES[name], self.log)]


@pytest.fixture(autouse=True)
def give_memory_back() -> Iterator[None]:
    """After each test, the memory its in-process jobs freed goes back to the system (glibc keeps freed heap in
    its arenas otherwise): a pytest-xdist worker that grew to 8 GB over many tests was killed by the kernel's
    out-of-memory killer beside a test of two hosts' processes (2026-12-06)."""
    yield
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


@pytest.fixture
def train_job(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """train_job(hyperparameters, **make_job_kwargs) -> Run: a fresh job folder, trained through the CLI."""
    counter = iter(range(100))

    def run(
        hyperparameters: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        base: Path | None = None,
        **kwargs: Any,
    ) -> Run:
        if base is None:
            defaults: dict[str, Any] = {"images": 8, "size": 32}
            hp = {"epochs": 1, "mini_batch_size": 4, "validation_mini_batch_size": 2, **(hyperparameters or {})}
            base = make_job(tmp_path / f"job{next(counter)}", hyperparameters=hp, **{**defaults, **kwargs})
        caplog.clear()
        with caplog.at_level("INFO"):
            given = {"SAGEMAKER_BASE_DIR": str(base), "SEMSEG_PROGRESS_EVERY": "1", **EXPORT_OFF, **(env or {})}
            code = main(["train"], given).code
        return Run(code, base, [r.getMessage() for r in caplog.records])

    return run


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelFolder:
    """A model trained by a real (tiny) job: FCN ResNet-50, 3 classes, crop 32."""
    hp = {"epochs": 1, "mini_batch_size": 4, "validation_mini_batch_size": 2, "crop_size": CROP}
    base = make_job(tmp_path_factory.mktemp("serve") / "ml", images=8, size=32, hyperparameters=hp)
    assert main(["train"], {"SAGEMAKER_BASE_DIR": str(base), **EXPORT_OFF}).code == 0
    return read_model_folder(base / "model", "the test model")
