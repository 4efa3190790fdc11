"""Helpers shared by unit and functional tests."""

from __future__ import annotations

import http.client
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semseg.data.labels import IGNORE
from semseg.fit.metrics import ConfusionMatrix


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
