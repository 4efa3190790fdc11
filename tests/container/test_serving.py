"""`serve` in the real image: gunicorn on a port, real HTTP requests, `docker stop`, a missing model."""

from __future__ import annotations

import io
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.container.conftest import docker, jpeg, make_job, run_job

pytestmark = pytest.mark.container

pytest.importorskip("sagemaker", reason="run with the SDK environment: make test-container")
PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def trained(image: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A job folder whose model/ was written by `train` in the image."""
    base = make_job(image, tmp_path_factory.mktemp("serve") / "ml")
    proc = run_job(image, base)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, path: str, body: bytes | None = None, **headers: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for_ping(port: int, name: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if request(port, "/ping")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(docker("logs", name, check=False).stderr[-3000:])


def test_docker_run_serve_answers_http_and_stops_cleanly(image: str, trained: Path) -> None:
    from sagemaker.amazon.common import read_recordio
    from sagemaker.amazon.record_pb2 import Record

    port = free_port()
    name = f"semseg-serve-{port}"
    env = ["-e", f"SAGEMAKER_BIND_TO_PORT={port}", "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=2"]
    docker(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "host",
        *env,
        "-v",
        f"{trained / 'model'}:/opt/ml/model:ro",
        image,
        "serve",
    )
    try:
        wait_for_ping(port, name)
        status, headers, body = request(port, "/execution-parameters")
        assert status == 200 and json.loads(body)["MaxConcurrentTransforms"] == 2

        status, headers, body = request(port, "/invocations", jpeg(37, 45), **{"Content-Type": "image/jpeg"})
        assert status == 200 and headers["Content-Type"] == "image/png"
        mask = PIL.open(io.BytesIO(body))
        assert mask.mode == "L" and mask.size == (45, 37)

        accept = {"Content-Type": "image/jpeg", "Accept": "application/x-protobuf"}
        status, headers, body = request(port, "/invocations", jpeg(37, 45), **accept)
        assert status == 200
        records = list(read_recordio(io.BytesIO(body)))  # as the AWS notebook decodes it
        assert len(records) == 1
        record = Record()
        record.ParseFromString(records[0])
        shape = list(record.features["shape"].int32_tensor.values)
        assert shape == [1, 3, 37, 45] and len(record.features["target"].float32_tensor.values) == 3 * 37 * 45

        status, _, body = request(port, "/invocations", b"GIF89a...", **{"Content-Type": "text/plain"})
        assert status == 415 and b"image/jpeg" in body
        status, _, body = request(port, "/invocations", b"not a jpeg", **{"Content-Type": "image/jpeg"})
        assert status == 400
        assert request(port, "/ping")[0] == 200  # still serving

        started = time.monotonic()
        docker("stop", "--time", "60", name)
        assert time.monotonic() - started < 30
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
        logs = docker("logs", name).stderr
    finally:
        docker("rm", "-f", name, check=False)
    assert state["ExitCode"] == 0, logs[-3000:]
    assert "Handling signal: term" in logs and "Worker exiting" in logs


def test_serve_without_a_model_exits_at_once_naming_the_file(image: str, tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    proc = docker("run", "--rm", "--network", "none", "-v", f"{tmp_path}:/opt/ml", image, "serve", check=False)
    assert proc.returncode == 2
    assert "/opt/ml/model/hyperparams.json" in proc.stdout + proc.stderr
