"""Pipe mode under `docker run`: FIFOs made and written on the host, as SageMaker's agent does, and read
through the mounted /opt/ml. (The SDK's local mode writes TrainingInputMode File for every channel and
refuses other input modes, so it cannot emulate Pipe mode.)"""

from __future__ import annotations

import re
import struct
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import pytest

from tests.container.support import make_job, run_job
from tests.pipes import PipeWriter, to_pipe_mode

pytestmark = pytest.mark.container


def same(stream: bytes, _pass: int) -> bytes:
    return stream


def test_docker_run_trains_on_pipe_mode_fifos(image: str, tmp_path: Path) -> None:
    base = make_job(image, tmp_path / "ml", {"epochs": "2", "mini_batch_size": "2"})
    streams = to_pipe_mode(base)
    with ExitStack() as stack:
        fifos = [
            stack.enter_context(PipeWriter(base / "input" / "data", split, partial(same, stream)))
            for split, stream in streams.items()
        ]
        proc = run_job(image, base, docker_args=("-e", "SEMSEG_PIPE_TIMEOUT=60"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Channel train: Pipe mode, RecordIO" in proc.stdout
    assert len(re.findall(r"validation mIOU: (\S+)", proc.stdout)) == 2
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= {p.name for p in (base / "model").iterdir()}
    assert [fifo.written for fifo in fifos] == [2, 2]


def test_a_bad_stream_in_the_container_names_the_fifo_and_record(image: str, tmp_path: Path) -> None:
    base = make_job(image, tmp_path / "ml", {"epochs": "1", "mini_batch_size": "2"})
    stream = to_pipe_mode(base, ("train",))["train"]
    bad = struct.pack("<I", 0x12345678) + stream[4:]  # the first record's magic number is wrong
    with PipeWriter(base / "input" / "data", "train", lambda _n: bad):
        proc = run_job(image, base, docker_args=("-e", "SEMSEG_PIPE_TIMEOUT=60"))
    assert proc.returncode == 2
    failure = (base / "output" / "failure").read_text()
    assert failure.startswith(
        "ClientError: Channel 'train', Pipe-mode FIFO /opt/ml/input/data/train_0: record 0 is not a RecordIO record"
    ), failure
