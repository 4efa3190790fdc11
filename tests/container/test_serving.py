"""`serve` in the real image: gunicorn on a port, real HTTP requests, `docker stop`, a missing model."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.container.support import docker, free_port, jpeg, make_job, request, run_job, wait_for_ping

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
        docker("stop", "--time", "120", name)
        assert time.monotonic() - started < 60, "ended on SIGTERM, not killed after 120 s"
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


def served_classes(image: str, trained: Path, pictures: list[bytes], **env: str) -> tuple[list[Any], str]:
    """`serve` in the image on the job's model folder (one worker): each picture's class PNG, and the log."""
    import numpy as np

    port = free_port()
    name = f"semseg-serve-{port}"
    settings = [item for key, value in env.items() for item in ("-e", f"{key}={value}")]
    docker(
        "run", "-d", "--name", name, "--network", "host", "-e", f"SAGEMAKER_BIND_TO_PORT={port}",
        "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=1", *settings, "-v", f"{trained / 'model'}:/opt/ml/model:ro", image,
        "serve",
    )  # fmt: skip
    try:
        wait_for_ping(port, name)
        answers = []
        for picture in pictures:
            status, _, body = request(port, "/invocations", picture, **{"Content-Type": "image/png"})
            assert status == 200, body[:300]
            answers.append(np.asarray(PIL.open(io.BytesIO(body))))
        logs = docker("logs", name).stdout + docker("logs", name).stderr
    finally:
        docker("rm", "-f", name, check=False)
    return answers, logs


def test_the_cpu_image_serves_the_jobs_export_as_its_engine_would(image: str, trained: Path) -> None:
    """The job in the image wrote model.onnx; `serve` answers from the fastest export on OpenVINO, and the FP32
    export's class PNGs equal the engine's on >= 99.9% of the pixels (the job's own training images, and a mosaic of
    them that goes by windows)."""
    import numpy as np

    images = [np.asarray(PIL.open(p).convert("RGB")) for p in sorted((trained / "input/data/train").glob("*"))]
    mosaic = np.concatenate([np.concatenate(images[:2], axis=1), np.concatenate(images[2:4], axis=1)])
    pictures = []
    for picture in [*images, mosaic]:  # the mosaic is over crop_size**2 pixels: windows
        png = io.BytesIO()
        PIL.fromarray(picture).save(png, "PNG")
        pictures.append(png.getvalue())
    assert (trained / "model" / "model.onnx").is_file()
    _, fastest_log = served_classes(image, trained, pictures[:1])
    assert "onnx (INT8) on OpenVINO" in fastest_log or "onnx (FP32) on OpenVINO" in fastest_log, fastest_log[-3000:]
    assert (trained / "model" / "model-int8.onnx").is_file() == ("(INT8) on OpenVINO" in fastest_log)
    budget = {"SEMSEG_PIXEL_BUDGET": "1"}  # at least crop_size**2: one window's pixels
    fp32, fp32_log = served_classes(image, trained, pictures, SEMSEG_SERVE_MODEL="fp32", **budget)
    assert "model.onnx (FP32) on OpenVINO" in fp32_log
    engine, engine_log = served_classes(image, trained, pictures, SEMSEG_SERVE_MODEL="engine", **budget)
    assert "model_best.params on the MXNet engine" in engine_log
    pixels = sum(a.size for a in engine)
    assert sum(int((a == b).sum()) for a, b in zip(fp32, engine, strict=True)) >= 0.999 * pixels


def test_buildspecs_smoke_test_passes_on_the_cpu_image(image: str) -> None:
    """buildspec.yml's own smoke-test line for the CPU image (a job, then a `serve` answer from the export)."""
    import os
    import subprocess

    import yaml

    root = Path(__file__).resolve().parents[2]
    commands = yaml.safe_load((root / "buildspec.yml").read_text())["phases"]["build"]["commands"]
    line = next(c for c in commands if "smoke_test.sh" in c and "$CPU_IMAGE" in c)
    env = {**os.environ, "CPU_IMAGE": image, "SMOKE_PORT": str(free_port())}
    done = subprocess.run(["bash", "-c", line], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "smoke test: serve answered a" in done.stdout and "smoke test passed" in done.stdout
