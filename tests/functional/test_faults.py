"""The fault matrix: what a job keeps, how it exits, its failure file and its log, under the faults a real job
meets, on both engines, with one process and with two (SEMSEG_CPU_DEVICES=2: two CPU contexts in one MXNet
process, two torch processes under DDP). Every job runs as `python -m semseg train`, the container's entry point,
so the watching parent (semseg.watch) is part of what is tested."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semseg.example import make_job
from tests.helpers import GRACE_SECONDS, JobOutputs

pytestmark = pytest.mark.slow

ENDS_WITHIN_SECONDS = 60  # a failure in one process ends every process within this (not the collective's timeout)
SETUPS = [("mxnet", 1), ("mxnet", 2), ("torch", 1), ("torch", 2)]
SETUP_IDS = [f"{engine}-{n}" for engine, n in SETUPS]
CHECKPOINT_BEST = {"mxnet": "best.params", "torch": "best.pt"}


class Job(JobOutputs):
    """A training job run as the container runs it, its log read line by line."""

    def __init__(self, base: Path, engine: str, processes: int, **env: str) -> None:
        self.base = base
        environ = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "SEMSEG_PROGRESS_EVERY": "1", "PYTHONUNBUFFERED": "1"}
        environ.update(SEMSEG_ENGINE=engine, **env)
        if processes > 1:
            environ["SEMSEG_CPU_DEVICES"] = str(processes)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "semseg", "train"],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []

    def wait_for(self, needle: str, timeout: float = 300) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self.lines.append(line)
            if needle in line:
                return
            assert time.monotonic() < deadline, f"no {needle!r} in time"
        raise AssertionError(f"the job ended before {needle!r}:\n{self.log[-3000:]}")

    def end(self, timeout: float = GRACE_SECONDS) -> int:
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.append(out)
        return self.proc.returncode

    @property
    def log(self) -> str:
        return "".join(self.lines)


def job_folder(tmp_path: Path, epochs: int = 4, checkpoints: bool = True, **hyperparameters: object) -> Path:
    hp = {"epochs": epochs, "mini_batch_size": 2, "validation_mini_batch_size": 2, **hyperparameters}
    base = make_job(tmp_path / "job", images=8, size=32, hyperparameters=hp)
    if checkpoints:
        (base / "checkpoints").mkdir()
    return base


def descendants(pid: int) -> Iterator[int]:
    """Every process under `pid` (read from /proc: a thread's children are listed under that thread only)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    below, found = {pid}, True
    while found:
        found = False
        for child, parent in parents.items():
            if parent in below and child not in below:
                below.add(child)
                found = True
                yield child


def alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def training_workers(pid: int) -> list[int]:
    """The torch engine's spawned worker processes under the `train` process `pid`."""
    return [p for p in descendants(pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


@pytest.mark.parametrize("engine, processes", SETUPS, ids=SETUP_IDS)
def test_sigterm_mid_epoch_saves_and_exits_as_stopped(tmp_path: Path, engine: str, processes: int) -> None:
    job = Job(job_folder(tmp_path), engine, processes)
    job.wait_for("epoch: 1, validation mIOU")
    job.wait_for("#progress_notice. epoch: 2, iterations: 1 ")
    sent = time.monotonic()
    job.proc.send_signal(signal.SIGTERM)
    assert job.end() == 128 + signal.SIGTERM, job.log[-3000:]
    assert time.monotonic() - sent < GRACE_SECONDS
    assert "Training stopped by signal 15; checkpoint and artifacts are saved" in job.log
    assert {"model_algo-1", "model_best.params", "hyperparams.json", "model-symbol.json"} <= job.model_files
    assert sorted(p.name for p in (job.base / "checkpoints").iterdir()) == [CHECKPOINT_BEST[engine], "epoch-0001"]
    assert not job.failure


def test_sigterm_while_the_torch_workers_start_reaches_them_once_they_handle_it(tmp_path: Path) -> None:
    """Signalled as the launcher starts its processes: a worker still importing would die of the signal, so it is
    passed on as each becomes ready; the job stops at its first iteration, as stopped, with its artifacts."""
    job = Job(job_folder(tmp_path), "torch", 2)
    job.wait_for("Starting 2 training processes")
    job.proc.send_signal(signal.SIGTERM)
    assert job.end() == 128 + signal.SIGTERM, job.log[-3000:]
    assert "Training stopped by signal 15" in job.log and not job.failure
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= job.model_files
    assert "validation mIOU" not in job.log, "stopped before the first epoch ended"


@pytest.mark.parametrize("engine, processes", [("mxnet", 1), ("torch", 2)], ids=["mxnet-1", "torch-2"])
def test_a_second_signal_stops_at_once(tmp_path: Path, engine: str, processes: int) -> None:
    job = Job(job_folder(tmp_path), engine, processes)
    job.wait_for("#progress_notice. epoch: 0, iterations: 1 ")
    workers = training_workers(job.proc.pid)
    assert len(workers) == (2 if engine == "torch" else 0)
    job.proc.send_signal(signal.SIGTERM)
    job.wait_for("Received signal 15: stopping at the next safe point")  # two at once would be one pending signal
    job.proc.send_signal(signal.SIGTERM)
    assert job.end(timeout=ENDS_WITHIN_SECONDS) == 128 + signal.SIGTERM, job.log[-3000:]
    assert "Stopped at once by a second stop signal (15)" in job.log
    assert "Training stopped by signal" not in job.log
    assert not job.failure and not any(alive(w) for w in workers)
    assert "hyperparams.json" in job.model_files  # what was written before the signals stays


@pytest.mark.parametrize("engine, processes", SETUPS, ids=SETUP_IDS)
def test_a_bad_mask_in_one_share_ends_every_process_with_the_client_error(
    tmp_path: Path, engine: str, processes: int
) -> None:
    base = job_folder(tmp_path)
    bad = sorted((base / "input" / "data" / "train_annotation").iterdir())[3]
    mask = np.array(Image.open(bad))
    mask[:] = 9  # not a class of the 3, found when the sample is read (in one process's share)
    Image.fromarray(mask).save(bad)
    job = Job(base, engine, processes)
    assert job.end(timeout=ENDS_WITHIN_SECONDS + 60) == 2, job.log[-3000:]  # start-up, then within the minute
    assert job.failure.startswith(f"ClientError: Annotation {bad} has pixel values [9]"), job.failure
    assert f"ClientError: Annotation {bad}" in job.log
    assert job.model_files == {"hyperparams.json"}


@pytest.mark.parametrize(
    "engine, processes, victim", [("mxnet", 1, "job"), ("torch", 1, "job"), ("torch", 2, "worker")]
)
def test_a_killed_training_process_leaves_a_failure_file_and_the_best_weights(
    tmp_path: Path, engine: str, processes: int, victim: str
) -> None:
    """SIGKILL, as the kernel's out-of-memory killer sends it: nothing in the killed process runs, so the process
    that watches it (the `train` parent, or the torch launcher for a worker) writes the failure file."""
    job = Job(job_folder(tmp_path), engine, processes)
    job.wait_for("Epoch 0: best validation mIOU so far, kept for model_best.params")
    job.wait_for("#progress_notice. epoch: 1, iterations: 1 ")
    training = Path(f"/proc/{job.proc.pid}/task/{job.proc.pid}/children").read_text().split()[0]  # the watched job
    target = training_workers(job.proc.pid)[-1] if victim == "worker" else int(training)
    os.kill(target, signal.SIGKILL)
    code = job.end(timeout=ENDS_WITHIN_SECONDS)
    if victim == "worker":
        assert code == 1 and job.failure.startswith("AlgorithmError: Training process 1 was killed by signal SIGKILL")
    else:
        assert code == 128 + signal.SIGKILL
        assert job.failure.startswith(f"AlgorithmError: The training process (pid {target}) was killed by signal 9")
    assert "out of memory" in job.failure and "lower mini_batch_size" in job.failure
    assert "killed by signal" in job.log
    assert {"model_best.params", "hyperparams.json"} <= job.model_files


@pytest.mark.parametrize("engine", ["mxnet", "torch"])
def test_a_reused_model_folder_holds_only_this_jobs_outputs(tmp_path: Path, engine: str) -> None:
    """`docker run -v /data/ml:/opt/ml` twice: the second job, stopped before its first validation, must not pass
    the first job's best weights off as its own; the first job's files are kept aside, whole."""
    base = job_folder(tmp_path, epochs=1, checkpoints=False)
    first = Job(base, engine, 1)
    assert first.end() == 0, first.log[-3000:]
    earlier = {p.name: p.read_bytes() for p in (base / "model").iterdir()}
    (base / "output").mkdir(exist_ok=True)
    (base / "output" / "failure").write_text("ClientError: from a job before these")
    (base / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({**json.loads((base / "input/config/hyperparameters.json").read_text()), "epochs": "3"})
    )
    second = Job(base, engine, 1)
    second.wait_for("#progress_notice. epoch: 0, iterations: 1 ")
    second.proc.send_signal(signal.SIGTERM)
    assert second.end() == 128 + signal.SIGTERM, second.log[-3000:]
    model = base / "model"
    [aside] = [p for p in model.iterdir() if p.name.startswith("previous-")]
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == earlier
    assert (model / "model_best.params").read_bytes() == (model / "model_algo-1").read_bytes()  # its own, final
    assert (model / "model_best.params").read_bytes() != earlier["model_best.params"]
    assert "holds an earlier job's files" in second.log
    assert not (base / "output" / "failure").exists()
    assert [p.name for p in (base / "output").glob("previous-*/*")] == ["failure"]


def test_a_diverged_loss_in_two_processes_is_the_algorithm_error_that_says_what_to_change(tmp_path: Path) -> None:
    base = job_folder(tmp_path, epochs=2, optimizer="rmsprop", learning_rate="1")
    job = Job(base, "torch", 2)
    assert job.end(timeout=GRACE_SECONDS) == 1, job.log[-3000:]
    assert job.failure.startswith("AlgorithmError: The train loss diverged"), job.failure[:300]
    assert "Lower learning_rate (now 1)" in job.failure
    assert "The train loss diverged" in job.log
    assert "hyperparams.json" in job.model_files


@pytest.mark.parametrize("engine, processes", SETUPS, ids=SETUP_IDS)
def test_a_step_that_cannot_fit_is_refused_before_any_data_work(train_job, engine: str, processes: int) -> None:
    """Instead of an out-of-memory kill after the data was read: the estimate (semseg.fit.memory) refuses it."""
    env = {"SEMSEG_ENGINE": engine, **({"SEMSEG_CPU_DEVICES": str(processes)} if processes > 1 else {})}
    run = train_job({"crop_size": "8192"}, env=env)
    assert run.code == 2, run.failure
    assert run.failure.startswith("ClientError: crop_size=8192 with 4 training image(s)"), run.failure
    assert f"{processes} device(s)" in run.failure and "the host's memory" in run.failure
    assert "The largest that fit: crop_size=" in run.failure
    assert not any(m.startswith("Channel train:") for m in run.messages), "refused before the data is read"
    assert any(m.startswith("ClientError: crop_size=8192") for m in run.messages)
    assert not (run.base / "model").exists() or not run.model_files, "nothing written: refused before the job"
