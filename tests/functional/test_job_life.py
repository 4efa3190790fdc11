"""A job's life: SIGTERM, checkpoints and resume, incremental training, divergence."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from semseg.example import make_job

pytestmark = pytest.mark.slow

GRACE_SECONDS = 120  # SageMaker sends SIGKILL this long after SIGTERM


def start_training(base: Path, engine: str = "mxnet") -> subprocess.Popen[str]:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "SEMSEG_PROGRESS_EVERY": "1", "PYTHONUNBUFFERED": "1"}
    env["SEMSEG_ENGINE"] = engine
    return subprocess.Popen(
        [sys.executable, "-m", "semseg", "train"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for(proc: subprocess.Popen[str], needle: str, timeout: float = 300) -> list[str]:
    """Read the log until a line contains `needle`; returns the lines read."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if needle in line:
            return lines
        assert time.monotonic() < deadline, f"no {needle!r} in time"
    raise AssertionError(f"the job ended before {needle!r}:\n{''.join(lines[-30:])}")


def checkpointed_job(tmp_path: Path, name: str, epochs: int = 4) -> Path:
    base = make_job(
        tmp_path / name,
        images=8,
        size=32,
        hyperparameters={"epochs": epochs, "mini_batch_size": 2, "validation_mini_batch_size": 2},
    )
    (base / "checkpoints").mkdir()
    return base


@pytest.mark.parametrize("engine, best", [("mxnet", "best.params"), ("torch", "best.pt")])
def test_sigterm_mid_epoch_saves_and_exits_within_the_grace_period(tmp_path: Path, engine: str, best: str) -> None:
    base = checkpointed_job(tmp_path, "job")
    proc = start_training(base, engine)
    wait_for(proc, "epoch: 1, validation mIOU")
    wait_for(proc, "#progress_notice. epoch: 2, iterations: 1 ")
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=GRACE_SECONDS)
    assert time.monotonic() - sent < GRACE_SECONDS
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "Training stopped by signal 15" in out
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= {p.name for p in (base / "model").iterdir()}
    assert sorted(p.name for p in (base / "checkpoints").iterdir()) == [best, "epoch-0001"]
    assert not (base / "output" / "failure").exists()


@pytest.mark.parametrize("engine", ["mxnet", "torch"])
def test_resumed_run_ends_like_an_uninterrupted_one(tmp_path: Path, train_job, engine: str) -> None:
    whole = train_job(base=checkpointed_job(tmp_path, "whole"), env={"SEMSEG_ENGINE": engine})
    assert whole.code == 0, whole.failure

    base = checkpointed_job(tmp_path, "resumed")
    proc = start_training(base, engine)
    wait_for(proc, "epoch: 1, validation mIOU")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=GRACE_SECONDS)
    assert proc.returncode == 143
    resumed = train_job(base=base, env={"SEMSEG_ENGINE": engine})
    assert resumed.code == 0, resumed.failure
    assert any("Resuming from checkpoint" in m and "epoch-0001" in m for m in resumed.messages)
    assert len(resumed.metric("validation:mIOU")) == 2, "epochs 2 and 3 only"
    assert resumed.metric("validation:mIOU") == pytest.approx(whole.metric("validation:mIOU")[2:], abs=1e-6)
    assert resumed.metric("train:loss") == pytest.approx(whole.metric("train:loss")[2:], rel=1e-5)
    assert (base / "model" / "model_best.params").exists()


def test_corrupt_and_foreign_checkpoints_are_skipped(tmp_path: Path, train_job) -> None:
    base = checkpointed_job(tmp_path, "job", epochs=1)
    assert train_job(base=base).code == 0
    checkpoint = base / "checkpoints" / "epoch-0000"
    params = checkpoint / "model.params"
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    run = train_job(base=base)
    assert run.code == 0, run.failure
    assert any("Skipping checkpoint" in m and "model.params is" in m for m in run.messages)
    assert len(run.metric("validation:mIOU")) == 1, "trained from the start"

    config = base / "input" / "config" / "hyperparameters.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "learning_rate": "0.02"}))
    run = train_job(base=base)
    assert run.code == 0, run.failure
    assert any("made with other hyperparameters (learning_rate)" in m for m in run.messages)


def model_tar(model_dir: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for path in model_dir.iterdir():
            tar.add(path, arcname=path.name)
    return target


def test_incremental_training_from_a_model_tar(tmp_path: Path, train_job) -> None:
    first = train_job({"epochs": 1}, images=4)
    assert first.code == 0
    base = make_job(tmp_path / "second", images=4, size=32, hyperparameters={"epochs": 1, "mini_batch_size": 4})
    channel = base / "input" / "data" / "model"
    channel.mkdir()
    model_tar(first.base / "model", channel / "model.tar.gz")
    run = train_job(base=base)
    assert run.code == 0, run.failure
    assert any(m.startswith("Incremental training: starting from") and "model_best.params" in m for m in run.messages)
    assert not any("ImageNet" in m for m in run.messages)


def test_incremental_training_mismatch_names_both_values(tmp_path: Path, train_job) -> None:
    first = train_job({"epochs": 1}, images=4)
    base = make_job(
        tmp_path / "second", images=4, size=32, hyperparameters={"epochs": 1, "mini_batch_size": 4, "algorithm": "psp"}
    )
    channel = base / "input" / "data" / "model"
    channel.mkdir()
    for path in (first.base / "model").iterdir():  # extracted files work as well as the archive
        (channel / path.name).write_bytes(path.read_bytes())
    run = train_job(base=base)
    assert run.code == 2
    assert "algorithm=psp here but algorithm=fcn in the seed model" in run.failure


def test_divergence_is_an_algorithm_error_that_says_where(train_job) -> None:
    run = train_job({"optimizer": "rmsprop", "learning_rate": "1", "epochs": 2}, images=4)
    assert run.code == 1
    assert re.match(
        r"AlgorithmError: The train loss diverged \(NaN, infinite or above 1000 per pixel\) at epoch \d+, "
        r"iteration \d+\. "
        r"Lower learning_rate \(now 1\)",
        run.failure,
    ), run.failure[:300]
    assert (run.base / "model" / "hyperparams.json").exists()
