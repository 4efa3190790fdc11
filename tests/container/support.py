"""What the container tests share: the repository root, docker, the images built by docker/build.sh, job folders,
JPEGs. Runs in the SDK environment (.venv-sdk), without the project installed."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def docker(*args: str, timeout: int = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def built_image(variable: str, flavour: str) -> str:
    tag = os.environ.get(variable)
    if not tag:
        build = subprocess.run(
            ["bash", str(ROOT / "docker" / "build.sh"), flavour], capture_output=True, text=True, timeout=3000
        )
        assert build.returncode == 0, build.stderr[-4000:]
        tag = build.stdout.strip().splitlines()[-1]
    docker("image", "inspect", tag)
    return tag


def make_job(image: str, base: Path, hyperparameters: dict[str, Any] | None = None, images: int = 4) -> Path:
    """A job folder written by the image's own example generator (the test client has no MXNet)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    docker(
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        f"{base.parent}:/work",
        "--entrypoint",
        "/opt/venv/bin/python",
        image,
        "-m",
        "semseg.example",
        f"/work/{base.name}",
        "--images",
        str(images),
        "--size",
        "32",
        "--epochs",
        "1",
    )
    if hyperparameters is not None:
        path = base / "input" / "config" / "hyperparameters.json"
        current = json.loads(path.read_text())
        path.write_text(json.dumps({**current, **hyperparameters}))
    return base


def run_job(
    image: str, base: Path, args: Sequence[str] = ("train",), docker_args: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    return docker("run", "--rm", "--network", "none", "-v", f"{base}:/opt/ml", *docker_args, image, *args, check=False)


def jpeg(height: int, width: int, seed: int = 0) -> bytes:
    """A JPEG of random pixels (numpy and Pillow come with the SDK environment)."""

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
        buffer, "JPEG"
    )
    return buffer.getvalue()


def gluoncv_output_shape(image: str, folder: Path, params: str) -> str:
    """The output shape of GluonCV's FCN (3 classes, crop 32) with `folder/params` loaded, run inside `image`
    with plain GluonCV (the test client has no MXNet): the artifacts' promise of loading outside this project."""
    code = (
        "import semseg.engines.mxnet.gluoncv_import, mxnet as mx\n"
        "from gluoncv.model_zoo import FCN\n"
        "net = FCN(nclass=3, backbone='resnet50', pretrained_base=False, crop_size=32)\n"
        f"net.load_parameters('/model/{params}')\n"
        "print(net(mx.nd.zeros((1, 3, 32, 32)))[0].shape)\n"
    )
    loaded = docker(
        "run", "--rm", "--network", "none", "-v", f"{folder}:/model", "--entrypoint", "/opt/venv/bin/python",
        image, "-c", code,
    )  # fmt: skip
    return loaded.stdout.strip().splitlines()[-1]


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
