"""`docker run` with a mounted /opt/ml, as SageMaker runs the image."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.container.support import docker, make_job, run_job

pytestmark = pytest.mark.container

ARTIFACTS = {"hyperparams.json", "model_algo-1", "model_best.params", "model-symbol.json", "model-0000.params"}


@pytest.mark.parametrize("args", [("train",), ()], ids=["train", "no-argument"])
def test_docker_run_trains(image: str, tmp_path: Path, args: tuple[str, ...]) -> None:
    base = make_job(image, tmp_path / "ml", {"epochs": "2", "mini_batch_size": "2"})
    proc = run_job(image, base, args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = {p.name for p in (base / "model").iterdir()}
    assert ARTIFACTS | {"model.onnx"} <= names <= ARTIFACTS | {"model.onnx", "model-int8.onnx"}, names
    gate = json.loads((base / "output" / "data" / "evaluation.json").read_text())["int8"]
    assert gate["kept"] == ("model-int8.onnx" in names) and f"INT8 model {'kept' if gate['kept'] else 'not kept'}" in (
        proc.stdout + proc.stderr
    )
    assert len(re.findall(r"validation mIOU: (\S+)", proc.stdout)) == 2
    assert len(re.findall(r"train loss: (\S+)", proc.stdout)) == 2
    assert "#progress_metric: host=algo-1, completed 100 % of epochs" in proc.stdout
    assert not (base / "output" / "failure").exists()
    assert json.loads((base / "model" / "hyperparams.json").read_text())["epochs"] == "2"
    data = {p.name for p in (base / "output" / "data").iterdir()}
    assert {"evaluation.json", "confusion_matrix.png", "learning_curves.png", "validation-0.png"} <= data
    assert len(list((base / "output" / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert "Warning" not in proc.stderr and "Matplotlib" not in proc.stdout + proc.stderr, proc.stderr[-3000:]


def test_bad_hyperparameter_writes_the_failure_file(image: str, tmp_path: Path) -> None:
    base = make_job(image, tmp_path / "ml", {"num_classes": "1"})
    proc = run_job(image, base)
    assert proc.returncode == 2
    failure = (base / "output" / "failure").read_text()
    assert failure.startswith("ClientError: Invalid hyperparameters: num_classes=1 is out of range")
    assert not (base / "model").exists() or not any((base / "model").iterdir())


def test_missing_weights_are_a_client_error(image: str, tmp_path: Path) -> None:
    """The CPU test image is built without the weight prefetch: the default use_pretrained_model=True says so."""
    base = make_job(image, tmp_path / "ml", {"use_pretrained_model": "True"})
    proc = run_job(image, base)
    assert proc.returncode == 2
    failure = (base / "output" / "failure").read_text()
    assert "resnet50_v1s-25a187fa.params is missing" in failure and "/opt/mxnet/models" in failure


def test_unknown_command_is_a_usage_error(image: str, tmp_path: Path) -> None:
    proc = run_job(image, tmp_path, ("fit",))
    assert proc.returncode == 2 and "usage: train" in proc.stderr


def test_image_facts(image: str) -> None:
    info = json.loads(docker("image", "inspect", image).stdout)[0]
    config = info["Config"]
    assert config["Entrypoint"] == ["/opt/venv/bin/train"], "exec form, so SIGTERM reaches Python"
    labels = config["Labels"]
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", labels["org.opencontainers.image.revision"])
    assert labels["org.opencontainers.image.version"]
    assert "MXNET_HOME=/opt/mxnet" in config["Env"]
    probe = docker("run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "test ! -e /opt/ml && echo clean")
    assert probe.stdout.strip() == "clean"


def test_docker_stop_saves_and_exits_within_the_grace_period(image: str, tmp_path: Path) -> None:
    """StopTrainingJob and spot interruptions send SIGTERM (then SIGKILL after 120 s): `docker stop` does the same."""
    base = make_job(image, tmp_path / "ml", {"epochs": "50", "mini_batch_size": "2"})
    (base / "checkpoints").mkdir()
    name = f"semseg-stop-{tmp_path.name}"
    docker("run", "-d", "--name", name, "--network", "none", "-v", f"{base}:/opt/ml", image, "train")
    try:
        deadline = time.monotonic() + 300
        while not list((base / "checkpoints").glob("epoch-*")):
            assert time.monotonic() < deadline, docker("logs", name, check=False).stdout[-2000:]
            time.sleep(1)
        started = time.monotonic()
        docker("stop", "--time", "120", name)
        assert time.monotonic() - started < 120
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
        logs = docker("logs", name).stdout
    finally:
        docker("rm", "-f", name, check=False)
    assert state["ExitCode"] == 143, logs[-2000:]
    assert "Training stopped by signal 15" in logs
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= {p.name for p in (base / "model").iterdir()}
    assert not (base / "output" / "failure").exists()
