"""Helpers shared by unit and functional tests."""

from __future__ import annotations

import http.client
import http.server
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from semseg.data.labels import IGNORE
from semseg.measures.confusion import ConfusionMatrix
from semseg.serving.app import App


def confusion(num_classes: int, *batches: tuple[np.ndarray, np.ndarray]) -> ConfusionMatrix:
    """A confusion matrix of (labels, predictions) batches, counted as the engine counts on a device:
    a histogram of label * num_classes + prediction over the pixels not labelled IGNORE."""
    matrix = ConfusionMatrix(num_classes)
    for labels, predictions in batches:
        matrix.add(labels, predictions, IGNORE)
    return matrix


def read_board(folder: Path) -> Any:
    """The event files of `folder`, read back by TensorBoard's own reader (purged events left out, as it shows)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    board.Reload()
    return board


def board_scalars(board: Any, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in board.Scalars(tag)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_and_ask(folder: Path, images: list[np.ndarray], **env: str) -> tuple[list[np.ndarray], str]:
    """`python -m semseg serve` of the model folder `folder` in its own process (real HTTP, one worker): the class
    PNG it answers for each image, and the server's log. The server must come up within two minutes and exit 0."""
    port = free_port()
    environ = {
        **os.environ, "SAGEMAKER_BASE_DIR": str(folder.parent), "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1", **env,
    }  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "semseg", "serve"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    answers = []
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/ping")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.5)
        for image in images:
            png = io.BytesIO()
            Image.fromarray(image).save(png, format="PNG")
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("POST", "/invocations", png.getvalue(), {"Content-Type": "image/png"})
            answer = connection.getresponse()
            assert answer.status == 200
            answers.append(np.asarray(Image.open(io.BytesIO(answer.read()))))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    return answers, out


CLASSES = 3


CROP = 32


class Response:
    def __init__(self, app: App, environ: dict[str, Any]) -> None:
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            captured["status"], captured["headers"] = status, dict(headers)

        self.body = b"".join(app(environ, start_response))
        self.status = int(captured["status"].split()[0])
        self.headers: dict[str, str] = captured["headers"]

    @property
    def text(self) -> str:
        return self.body.decode()


def call(
    app: App,
    path: str,
    body: bytes = b"",
    method: str = "POST",
    content_type: str | None = "image/jpeg",
    **headers: str,
) -> Response:
    environ: dict[str, Any] = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    environ.update({f"HTTP_{k.upper()}": v for k, v in headers.items()})
    return Response(app, environ)


def encoded(image: np.ndarray | Image.Image, fmt: str = "JPEG", **save: Any) -> bytes:
    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_classes(body: bytes) -> np.ndarray:
    picture = Image.open(io.BytesIO(body))
    assert picture.mode == "L" and picture.format == "PNG"
    return np.asarray(picture)


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


def model_tar(model_dir: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for path in model_dir.iterdir():
            tar.add(path, arcname=path.name)
    return target


def fake_nvidia_smi(
    folder: Path, monkeypatch: pytest.MonkeyPatch, rows: list[str], old_driver: bool = False, driver: str = "550.127.05"
) -> None:
    """An nvidia-smi that answers --query-gpu like the real one (an old driver refuses compute_cap)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    names = "\n".join(",".join(row.split(",")[:2]) for row in rows)
    refuse = 'echo "Field \\"compute_cap\\" is not a valid field to query." >&2; exit 2' if old_driver else ""
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f'  --query-gpu=index,name,compute_cap) {refuse}\n    printf "%s\\n" "{chr(10).join(rows)}" ;;\n'
        f'  --query-gpu=index,name) printf "%s\\n" "{names}" ;;\n'
        f'  --query-gpu=driver_version) echo "{driver}" ;;\n'
        "  *) exit 9 ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")


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


class Server:
    """A local HTTP server: path -> (status, body, seconds to wait before answering)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, float]] = {}
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body, delay = routes.get(self.path, (404, b"not here", 0.0))
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", f'"etag-{len(body)}"')
                if "resolve" in self.path:
                    self.send_header("X-Repo-Commit", "0123abcd")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
