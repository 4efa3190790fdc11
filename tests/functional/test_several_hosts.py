"""Two hosts, as two `train` processes on this machine: hosts 127.0.0.1 and 127.0.0.2 (both loopback, so each has
its own address as on SageMaker), each with its own /opt/ml; on MXNet's parameter server, and on torch.distributed
(gloo, static rendezvous; two processes per host where it says so)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from functools import partial
from itertools import count
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semseg.example import make_job
from tests.helpers import GRACE_SECONDS, board_scalars, read_board, wait_for
from tests.pipes import PipeWriter, to_pipe_mode

pytestmark = pytest.mark.slow

HOSTS = ["127.0.0.1", "127.0.0.2"]
HP = {"epochs": 2, "mini_batch_size": 4, "validation_mini_batch_size": 2}
ENGINES = ["mxnet", "torch"]
_ports = count(9400 + 20 * (os.getpid() % 20), 5)  # each job its own ports: no waiting for sockets in TIME_WAIT


def start_hosts(
    tmp_path: Path,
    name: str,
    hp: dict | None = None,
    env: dict[str, str] | None = None,
    checkpoints: bool = False,
    engine: str = "mxnet",
) -> tuple[list[Path], list[subprocess.Popen[str]]]:
    """Both hosts' jobs, started; with `checkpoints`, one checkpoint folder that both see (as SageMaker
    restores the job's checkpoint S3 prefix on every host)."""
    port = next(_ports)
    bases, procs = [], []
    for rank, host in enumerate(HOSTS):
        base = tmp_path / name / f"host{rank}"
        if not base.exists():
            make_job(base, images=8, size=32, hyperparameters={**HP, **(hp or {})})
        config = base / "input" / "config"
        resources = {"current_host": host, "hosts": HOSTS, "network_interface_name": "lo"}
        (config / "resourceconfig.json").write_text(json.dumps(resources))
        if checkpoints:
            shared = tmp_path / name / "checkpoints"
            (config / "checkpointconfig.json").write_text(json.dumps({"LocalPath": str(shared)}))
        variables = {
            **os.environ,
            "SAGEMAKER_BASE_DIR": str(base),
            "SEMSEG_PROGRESS_EVERY": "1",
            "SEMSEG_PS_PORT": str(port),
            "SEMSEG_MASTER_PORT": str(port),
            "SEMSEG_ENGINE": engine,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "semseg", "train"],
                env=variables,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        bases.append(base)
    return bases, procs


def finish(procs: list[subprocess.Popen[str]], timeout: float = 300) -> list[str]:
    return [proc.communicate(timeout=timeout)[0] for proc in procs]


def same(stream: bytes, _pass: int) -> bytes:
    return stream


def metric(log: str, name: str) -> list[float]:
    return [float(v) for v in re.findall(rf"{name}: (\S+) \.", log)]


@pytest.mark.parametrize("engine", ENGINES)
def test_two_hosts_train_with_global_metrics_and_one_model(tmp_path: Path, engine: str) -> None:
    torch = engine == "torch"
    env = {"SEMSEG_CPU_DEVICES": "2"} if torch else {}  # torch: two processes on each host, four in all
    bases, procs = start_hosts(tmp_path, "two", env=env, engine=engine)
    logs = finish(procs)
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    for host, log in zip(HOSTS, logs):
        assert len(re.findall(rf"host: {re.escape(host)}, epoch: \d, train loss", log)) == 2, "each host's own lines"
    assert metric(logs[0], "validation mIOU") == metric(logs[1], "validation mIOU"), "global: the same on both"
    assert len(metric(logs[0], "validation mIOU")) == 2
    losses = metric(logs[0], "train loss"), metric(logs[1], "train loss")
    if torch:  # the processes' losses are summed: the loss of the whole batch, on every host
        assert losses[0] == losses[1]
    else:
        assert losses[0] != losses[1], "each host its own half of the batch"
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= {p.name for p in (bases[0] / "model").iterdir()}
    assert not (bases[1] / "model").exists() or not any((bases[1] / "model").iterdir()), "only the first host writes"
    for folder in ("output/data", "output/tensorboard"):  # what people look at: the first host's too
        assert any((bases[0] / folder).iterdir()) and not (bases[1] / folder).exists(), folder
    board = read_board(bases[0] / "output/tensorboard")
    assert [v for _, v in board_scalars(board, "validation/mIOU")] == [
        float(np.float32(v)) for v in metric(logs[0], "validation mIOU")
    ], "the global mIOU"
    if torch:
        assert all("rendezvous at 127.0.0.1:" in log and "GLOO_SOCKET_IFNAME=lo" in log for log in logs)
        assert "Starting 2 training processes (cpu, torch.distributed gloo) on each of 2 hosts, 4 in all" in logs[1]
        assert (bases[0] / "model" / "model_algo-1").stat().st_size > 0
    else:
        assert "runs scheduler and server and a worker" in logs[0] and "runs server and a worker" in logs[1]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_host_trains_on_no_more_devices_than_its_share_of_the_batch(tmp_path: Path, engine: str) -> None:
    """mini_batch_size=2 on two hosts of two devices each: each host has one image a step, so it trains on one
    device. (Capped by the whole batch instead, as the MXNet engine once did, each host split its one image over
    two CPU contexts, which MXNet refuses: "Operator _copyto inferring shapes failed".)"""
    _, procs = start_hosts(tmp_path, "share", {"mini_batch_size": 2}, env={"SEMSEG_CPU_DEVICES": "2"}, engine=engine)
    logs = finish(procs)
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    for log in logs:
        assert "mini_batch_size=2 leaves 1 image(s) a host for its 2 devices: using 1 of them" in log
        assert len(metric(log, "validation mIOU")) == 2
    if engine == "torch":
        assert "Starting 1 training processes (cpu, torch.distributed gloo) on each of 2 hosts, 2 in all" in logs[0]
    else:
        assert "Training data-parallel on 1 CPU contexts (SEMSEG_CPU_DEVICES)" in logs[0]


@pytest.mark.serial  # a bound of seconds on the peer watch: alone on the cores
@pytest.mark.parametrize("engine", ENGINES)
def test_a_dead_host_fails_the_other_within_the_peer_timeout(tmp_path: Path, engine: str) -> None:
    bases, procs = start_hosts(tmp_path, "dead", {"epochs": 30}, env={"SEMSEG_PEER_TIMEOUT": "5"}, engine=engine)
    wait_for(procs[1], "epoch: 1, iterations: 1 ")
    procs[1].kill()  # SIGKILL: no goodbye, as a host that fails
    killed = time.monotonic()
    out, _ = procs[0].communicate(timeout=120)
    assert time.monotonic() - killed < 5 + 45, "the peer timeout plus a few probes, not 28 more epochs"
    assert procs[0].returncode == 1, out[-3000:]
    failure = (bases[0] / "output" / "failure").read_text()
    assert failure.startswith("AlgorithmError: Host 127.0.0.2 has not answered for "), failure
    assert "(SEMSEG_PEER_TIMEOUT)" in failure and "This host: 127.0.0.1" in failure
    assert (bases[0] / "model" / "model_best.params").exists(), "what was written stays"


@pytest.mark.parametrize("engine", ENGINES)
def test_sigterm_on_one_host_stops_both_cleanly_and_they_resume_together(tmp_path: Path, engine: str) -> None:
    bases, procs = start_hosts(tmp_path, "stop", {"epochs": 4}, checkpoints=True, engine=engine)
    wait_for(procs[0], "epoch: 1, validation mIOU")
    wait_for(procs[0], "epoch: 2, iterations: 1 ")
    procs[1].send_signal(signal.SIGTERM)  # one host only: the other stops with it
    logs = finish(procs, GRACE_SECONDS)
    assert [p.returncode for p in procs] == [143, 143], logs[0][-2000:] + logs[1][-2000:]
    assert "Another host was asked to stop: stopping with it" in logs[0]
    assert not any((base / "output" / "failure").exists() for base in bases)
    assert {"model_algo-1", "model_best.params"} <= {p.name for p in (bases[0] / "model").iterdir()}

    _, procs = start_hosts(tmp_path, "stop", checkpoints=True, engine=engine)
    logs = finish(procs)
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert all("Resuming from checkpoint" in log and "epoch-0001" in log for log in logs)
    assert len(metric(logs[0], "validation mIOU")) == 2, "epochs 2 and 3"
    assert metric(logs[0], "validation mIOU") == metric(logs[1], "validation mIOU")


@pytest.mark.parametrize("engine", ENGINES)
def test_sharded_by_s3_key_hosts_train_what_they_received_for_the_same_steps(tmp_path: Path, engine: str) -> None:
    """ShardedByS3Key: host 0 got 8 images, host 1 got 12: both take host 0's number of steps, and
    class_weights=auto counts the masks of both hosts, so they train with the same weights. On torch each host
    runs two processes, which split their host's files (4 + 4 and 6 + 6, one image of the batch each)."""
    for rank, images in enumerate((8, 12)):
        base = tmp_path / "sharded" / f"host{rank}"
        hp = {**HP, "num_training_samples": 20, "class_weights": "auto"}
        make_job(base, images=images, size=32, hyperparameters=hp, seed=rank)
        channel = {"TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key"}
        config = {name: {"TrainingInputMode": "File"} for name in ("validation", "validation_annotation")}
        config.update({"train": channel, "train_annotation": channel})
        (base / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(config))
    torch = engine == "torch"
    _, procs = start_hosts(tmp_path, "sharded", env={"SEMSEG_CPU_DEVICES": "2"} if torch else {}, engine=engine)
    logs = finish(procs)
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    share = 1 if torch else 2
    assert all(f"Channel train (ShardedByS3Key): 4 batches of {share} on this host" in log for log in logs)
    assert metric(logs[0], "validation mIOU") == metric(logs[1], "validation mIOU")
    weights = [re.findall(r"Class weight \d: \S+", log) for log in logs]
    assert len(weights[0]) == 3 and weights[0] == weights[1]
    both = [np.asarray(Image.open(p)) for p in sorted(tmp_path.glob("sharded/host*/input/data/train_annotation/*.png"))]
    pixels = np.bincount(np.concatenate([m.reshape(-1) for m in both]), minlength=256)[:3]
    written = json.loads((tmp_path / "sharded/host0/model/class_weights.json").read_text())
    assert written["pixels"] == pixels.tolist()


@pytest.mark.parametrize("engine", ENGINES)
def test_fewer_images_than_hosts_is_a_client_error(tmp_path: Path, train_job, engine: str) -> None:
    base = make_job(tmp_path / "job", images=4, size=32, hyperparameters={**HP, "mini_batch_size": 1})
    resources = {"current_host": HOSTS[0], "hosts": HOSTS, "network_interface_name": "lo"}
    (base / "input" / "config" / "resourceconfig.json").write_text(json.dumps(resources))
    port = str(next(_ports))
    run = train_job(base=base, env={"SEMSEG_PS_PORT": port, "SEMSEG_MASTER_PORT": port, "SEMSEG_ENGINE": engine})
    assert run.code == 2
    assert "mini_batch_size=1 is the batch of all 2 hosts together" in run.failure, run.failure


@pytest.mark.parametrize("engine", ENGINES)
def test_a_host_whose_data_fails_ends_at_once_and_the_other_follows(tmp_path: Path, engine: str) -> None:
    base = tmp_path / "bad" / "host1"
    make_job(base, images=8, size=32, hyperparameters=HP)
    label_map = base / "input" / "data" / "label_map"
    label_map.mkdir()
    (label_map / "train_label_map.json").write_text(json.dumps({"map": {"0": 0, "1": 1}}))  # class 2 is no class
    bases, procs = start_hosts(tmp_path, "bad", env={"SEMSEG_PEER_TIMEOUT": "5"}, engine=engine)
    logs = finish(procs, timeout=120)
    assert [p.returncode for p in procs] == [1, 2], logs[0][-2000:] + logs[1][-2000:]
    assert (bases[1] / "output" / "failure").read_text().startswith("ClientError: Annotation ")
    assert (bases[0] / "output" / "failure").read_text().startswith("AlgorithmError: Host 127.0.0.2 has not answered")


@pytest.mark.parametrize("engine", ENGINES)
def test_pipe_mode_on_two_hosts_with_streams_of_different_lengths(tmp_path: Path, engine: str) -> None:
    """ShardedByS3Key Pipe mode: host 0 streams 8 training pairs, host 1 streams 12. Each trains its share (2) of
    mini_batch_size=4, so host 0's stream ends after 4 batches: every epoch ends there for both, host 1 reads the
    rest of its stream unused, and the next epoch starts on the next FIFO on both. Validation streams too (each
    host its own 4 pairs), with the counts summed: the same mIOU on both. On torch each host runs two processes,
    its first one reading the FIFOs for both."""
    streams = []
    for rank, images in enumerate((8, 12)):
        base = tmp_path / "pipes" / f"host{rank}"
        make_job(base, images=images, size=32, hyperparameters={**HP, "num_training_samples": 20}, seed=rank)
        streams.append(to_pipe_mode(base))
        config_file = base / "input" / "config" / "inputdataconfig.json"
        config = json.loads(config_file.read_text())
        config["train"]["S3DistributionType"] = "ShardedByS3Key"
        config_file.write_text(json.dumps(config))
    with ExitStack() as stack:
        fifos = [
            {
                split: stack.enter_context(
                    PipeWriter(tmp_path / "pipes" / f"host{rank}" / "input" / "data", split, partial(same, data))
                )
                for split, data in stream.items()
            }
            for rank, stream in enumerate(streams)
        ]
        env = {"SEMSEG_PIPE_TIMEOUT": "20", **({"SEMSEG_CPU_DEVICES": "2"} if engine == "torch" else {})}
        _, procs = start_hosts(tmp_path, "pipes", env=env, engine=engine)
        logs = finish(procs)
    assert [p.returncode for p in procs] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    for log in logs:
        assert "Channel train (Pipe mode, ShardedByS3Key): batches of 2 on this host, of its own stream" in log
        assert ("read by its first process and shared by 2" in log) == (engine == "torch")
        assert re.findall(r"epoch: (\d), iterations: 4 ", log) == ["0", "1"] and "iterations: 5 " not in log
    ended = "another host's stream ended after 4 batches; every host ends the epoch there"
    assert logs[1].count(ended) == 2 and ended not in logs[0]
    assert metric(logs[0], "validation mIOU") == metric(logs[1], "validation mIOU")
    assert len(metric(logs[0], "validation mIOU")) == 2
    assert [fifo["train"].written for fifo in fifos] == [2, 2], "every FIFO read to its end, one per epoch"
    assert [fifo["validation"].written for fifo in fifos] == [2, 2]
