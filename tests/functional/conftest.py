"""Run real training jobs in-process on tiny generated data (real MXNet on the CPU)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import semseg.engines.mxnet.gluoncv_import  # noqa: F401  # first: GluonCV refuses to import beside torch 2 otherwise
from semseg.cli import main
from semseg.contract.report import METRIC_REGEXES
from semseg.example import make_job
from tests.conftest import EXPORT_OFF


class JobOutputs:
    """What a job left in its folder `base`: the failure file's text ("" without one) and the model files."""

    base: Path

    @property
    def failure(self) -> str:
        path = self.base / "output" / "failure"
        return path.read_text() if path.exists() else ""

    @property
    def model_files(self) -> set[str]:
        return {p.name for p in (self.base / "model").iterdir()}


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
