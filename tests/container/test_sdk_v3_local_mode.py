"""SageMaker Python SDK v3 (ModelTrainer, Mode.LOCAL_CONTAINER, Compute(instance_type="local_cpu")) trains with the
image offline, in its own environment: the client script runs under $SEMSEG_SDK3_PYTHON (make test-container
makes .venv-sdk3 from requirements-sdk3.txt)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.container.conftest import ROOT, make_job

pytestmark = pytest.mark.container


def sdk3_python() -> str:
    python = os.environ.get("SEMSEG_SDK3_PYTHON") or str(ROOT / ".venv-sdk3" / "bin" / "python")
    assert Path(python).exists(), f"{python} is missing: run `make test-container`, which makes .venv-sdk3"
    return python


def test_model_trainer_trains_in_local_container_mode(image: str, tmp_path: Path) -> None:
    job = make_job(image, tmp_path / "job", {"epochs": "2"})
    done = subprocess.run(
        [sdk3_python(), str(ROOT / "tests" / "container" / "sdk_v3_train.py"), image, str(job), str(tmp_path / "root")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert out.count(", validation mIOU: ") == 2 and "Training job completed" in out
    [line] = [line for line in done.stdout.splitlines() if line.startswith("MODEL ")]
    assert set(json.loads(line[len("MODEL ") :])) >= {
        "hyperparams.json", "model_algo-1", "model_best.params", "model-symbol.json", "model-0000.params"
    }  # fmt: skip
