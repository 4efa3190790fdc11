"""Pipe mode: jobs whose train and/or validation channels stream an augmented manifest through FIFOs, as
SageMaker does (tests/pipes.py writes them from a thread: one FIFO per channel and pass)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semseg.data.recordio import read_records
from semseg.example import make_job
from tests.helpers import GRACE_SECONDS, model_tar, start_training, wait_for
from tests.pipes import PipeWriter, frame, manifest_records, to_pipe_mode

HP = {"epochs": 2, "mini_batch_size": 4, "validation_mini_batch_size": 2}
FAST = {"SEMSEG_PIPE_TIMEOUT": "3"}


def job(tmp_path: Path, name: str, splits: tuple[str, ...] = ("train", "validation"), **hp: object) -> tuple:
    base = make_job(tmp_path / name, images=8, size=32, hyperparameters={**HP, **hp})
    return base, to_pipe_mode(base, splits)


@contextmanager
def writers(base: Path, streams: dict[str, bytes], passes: int = 100) -> Iterator[dict[str, PipeWriter]]:
    with ExitStack() as stack:
        data = base / "input" / "data"
        yield {
            split: stack.enter_context(PipeWriter(data, split, partial(same, stream), passes))
            for split, stream in streams.items()
        }


def same(stream: bytes, _pass: int) -> bytes:
    return stream


@pytest.mark.serial  # its data workers fork the test's own process
@pytest.mark.parametrize("engine", ["mxnet", "torch"])
def test_pipe_train_and_validation_train_every_epoch_with_the_managed_lines(
    tmp_path: Path, train_job, engine: str
) -> None:
    base, streams = job(tmp_path, "pipe")
    with writers(base, streams) as fifos:
        run = train_job(base=base, env={**FAST, "SEMSEG_ENGINE": engine, "SEMSEG_DATA_WORKERS": "2"})
    assert run.code == 0, run.failure
    assert len(run.metric("validation:mIOU")) == 2 and len(run.metric("train:loss")) == 2
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= run.model_files
    assert fifos["train"].written == 2 and fifos["validation"].written == 2, "one FIFO per channel and epoch"
    assert not (base / "input" / "data" / "train_annotation").exists()


def test_pipe_validation_scores_like_file_validation(tmp_path: Path, train_job) -> None:
    """Same training (File), validation streamed or read from folders: the same metrics; also with whole
    images (validation_mini_batch_size=1)."""
    for hp in ({}, {"validation_mini_batch_size": 1}):
        file_job = make_job(tmp_path / f"file{len(hp)}", images=8, size=32, hyperparameters={**HP, **hp})
        file_run = train_job(base=file_job)
        base, streams = job(tmp_path, f"pipe{len(hp)}", ("validation",), **hp)
        with writers(base, streams):
            pipe_run = train_job(base=base, env=FAST)
        assert pipe_run.code == 0 and file_run.code == 0, pipe_run.failure
        assert pipe_run.metric("validation:mIOU") == pytest.approx(file_run.metric("validation:mIOU"), abs=1e-9)
        assert pipe_run.metric("train:loss") == pytest.approx(file_run.metric("train:loss"), rel=1e-6)


def test_pipe_train_with_file_validation_and_a_label_map(tmp_path: Path, train_job) -> None:
    base, streams = job(tmp_path, "mixed", ("train",), num_training_samples=8)
    label_map = base / "input" / "data" / "label_map"
    label_map.mkdir()
    (label_map / "train_label_map.json").write_text(json.dumps({"map": {"0": 0, "1": 1}}))  # 2 is not a class
    with writers(base, streams):
        run = train_job(base=base, env=FAST)
    assert run.code == 2
    found = re.search(r"record (\d+) of channel 'train' \(FIFO [^)]*train_0\)", run.failure)
    assert found and "pixel values [2]" in run.failure, run.failure
    record = int(found.group(1))  # which one comes first follows the shuffle: check that it is a mask with a 2
    assert record % 2 == 1, "image, mask, image, mask, ...: masks are the odd records"
    mask = np.array(Image.open(io.BytesIO(_payloads(streams["train"])[record])))
    assert 2 in mask and not set(np.unique(mask)) - {0, 1, 2, 255}

    (label_map / "train_label_map.json").write_text(json.dumps({"map": {"0": 0, "1": 1, "2": 2}}))
    with writers(base, streams):
        run = train_job(base=base, env=FAST)
    assert run.code == 0, run.failure
    assert len(run.metric("validation:mIOU")) == 2


def test_a_stream_of_another_size_than_num_training_samples_warns(tmp_path: Path, train_job) -> None:
    base, streams = job(tmp_path, "count", ("train",), num_training_samples=20)
    with writers(base, streams):
        run = train_job(base=base, env=FAST)
    assert run.code == 0, run.failure
    warnings = [m for m in run.messages if "num_training_samples=20" in m and "streamed 8 pairs" in m]
    assert len(warnings) == 1, "once, after the first pass"


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def _records(base: Path) -> list[bytes]:
    return manifest_records(base / "file-mode-train", base / "file-mode-train_annotation")


BAD_STREAMS: dict[str, tuple[Callable[[list[bytes]], bytes], str]] = {
    "wrong magic": (lambda r: b"".join(r[:3]) + struct.pack("<I", 0x12345678) + r[3][4:], "record 3 is not a RecordIO"),
    "truncated record": (lambda r: b"".join(r[:5]) + r[5][:40], "record 5 is not a RecordIO record: the stream ends"),
    "odd number of records": (lambda r: b"".join(r[:7]), "record 6 is an image without its mask"),
    "RGB mask": (
        lambda r: b"".join(r[:3]) + frame(png(np.zeros((32, 32, 3), np.uint8))) + b"".join(r[4:]),
        "record 3 is a PNG image of mode RGB, not a single-channel 8-bit PNG",
    ),
    "image as mask": (lambda r: b"".join(r[:3]) + r[2] + b"".join(r[4:]), "record 3 is a JPEG image of mode RGB"),
    "mask size": (
        lambda r: b"".join(r[:5]) + frame(png(np.zeros((16, 32), np.uint8))) + b"".join(r[6:]),
        "record 5 is a 32x16 mask, but its image (record 4) is 32x32",
    ),
}


def _payloads(stream: bytes) -> list[bytes]:
    return list(read_records(io.BytesIO(stream).read))


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` RGB pixels in its header (and holds none): what a reader sees
    before it decodes, e.g. of a 20000 x 20000 aerial image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def jpeg(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_images_file_mode_would_skip_are_skipped_and_counted_by_record(tmp_path: Path, train_job) -> None:
    """The same limits as File mode, from each image's header (a 20000 x 20000 image is not decoded)."""
    base, _ = job(tmp_path, "skips", ("train",), num_training_samples=8)
    records = _records(base)
    records[2] = frame(b"not an image at all")
    records[6] = frame(jpeg(4))  # under 8 px on a side
    records[10] = frame(png_header(20000, 20000))  # 400 Mpx, over 64
    with writers(base, {"train": b"".join(records)}):
        run = train_job(base=base, env=FAST)
    assert run.code == 0, run.failure
    fifo = base / "input" / "data" / "train_0"
    [skipped] = [m for m in run.messages if m.startswith(f"Channel 'train', Pipe-mode FIFO {fifo}: skipped 3 pair")]
    assert "record 2 is no readable image" in skipped and "record 6 is 4x4, smaller than 8 pixels" in skipped
    assert "record 10 has 20000x20000 pixels, more than" in skipped or "record 10 is too large" in skipped
    assert any("num_training_samples=8" in m and "streamed 5 pairs" in m for m in run.messages)


@pytest.mark.parametrize("case", sorted(BAD_STREAMS))
def test_a_bad_stream_is_a_client_error_naming_channel_fifo_and_record(tmp_path: Path, train_job, case: str) -> None:
    base, _ = job(tmp_path, "bad", ("train",))
    make, expected = BAD_STREAMS[case]
    with writers(base, {"train": make(_records(base))}):
        run = train_job(base=base, env=FAST)
    assert run.code == 2, run.log[-2000:]
    fifo = base / "input" / "data" / "train_0"
    assert run.failure.startswith(f"ClientError: Channel 'train', Pipe-mode FIFO {fifo}: "), run.failure
    assert expected in run.failure


def test_a_fifo_that_never_appears_or_gets_no_writer_times_out(tmp_path: Path, train_job) -> None:
    base, _ = job(tmp_path, "missing", ("train",))
    started = time.monotonic()
    run = train_job(base=base, env={"SEMSEG_PIPE_TIMEOUT": "1"})
    assert time.monotonic() - started < 60
    assert run.code == 2
    assert f"FIFO {base / 'input' / 'data' / 'train_0'} never appeared in 1 s (SEMSEG_PIPE_TIMEOUT)" in run.failure

    os.mkfifo(base / "input" / "data" / "train_0")
    run = train_job(base=base, env={"SEMSEG_PIPE_TIMEOUT": "1"})
    assert run.code == 2
    assert "train_0 got no writer in 1 s" in run.failure


@pytest.mark.slow
@pytest.mark.serial  # a bound of seconds: alone on the cores
def test_sigterm_while_waiting_on_a_fifo_exits_with_artifacts_and_resumes(tmp_path: Path, train_job) -> None:
    """The writer stops after epoch 0: the job waits for train_1; SIGTERM ends it in seconds with the
    artifacts. A restarted container (FIFOs from train_0 again) resumes from the checkpoint."""
    base, streams = job(tmp_path, "sigterm", epochs=3)
    (base / "checkpoints").mkdir()
    with writers(base, streams, passes=1):
        proc = start_training(base)
        wait_for(proc, "Epoch 0: best validation mIOU")
        time.sleep(1)  # waiting on train_1 now
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=GRACE_SECONDS)
    # the pipe timeout is 600 s (the default); a slow machine takes 20 s to save the artifacts
    assert time.monotonic() - sent < 90, "seconds, not the pipe timeout"
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= {p.name for p in (base / "model").iterdir()}
    assert not (base / "output" / "failure").exists()

    with writers(base, streams) as fifos:
        resumed = train_job(base=base, env=FAST)
    assert resumed.code == 0, resumed.failure
    assert any("Resuming from checkpoint" in m and "epoch-0000" in m for m in resumed.messages)
    assert len(resumed.metric("validation:mIOU")) == 2, "epochs 1 and 2"
    assert fifos["train"].written == 2


def test_incremental_training_with_pipe_input(tmp_path: Path, train_job) -> None:
    first = train_job({"epochs": 1}, images=4)
    assert first.code == 0
    base, streams = job(tmp_path, "incremental", epochs=1)
    channel = base / "input" / "data" / "model"
    channel.mkdir()
    model_tar(first.base / "model", channel / "model.tar.gz")
    with writers(base, streams):
        run = train_job(base=base, env=FAST)
    assert run.code == 0, run.failure
    assert any(m.startswith("Incremental training: starting from") for m in run.messages)


@pytest.mark.parametrize("engine", ["mxnet", "torch"])
def test_auto_class_weights_in_pipe_mode_say_to_give_the_list(tmp_path: Path, train_job, engine: str) -> None:
    base, _ = job(tmp_path, f"weights-{engine}", ("train",), class_weights="auto")
    started = time.monotonic()
    run = train_job(base=base, env={"SEMSEG_ENGINE": engine, "SEMSEG_PIPE_TIMEOUT": "300"})
    assert run.code == 2 and time.monotonic() - started < 150, "before any wait on the FIFO"
    assert "class_weights=auto counts the pixels of the training masks" in run.failure
    assert "Give class_weights as a list of num_classes numbers" in run.failure


def test_torch_processes_of_one_host_share_its_fifos_read_by_the_first(tmp_path: Path, train_job) -> None:
    """Two torch processes on one host (SEMSEG_CPU_DEVICES=2): the first reads each FIFO once and hands each
    process its share of every batch, so both train, one FIFO per channel and epoch is read, and validation
    scores every streamed pixel once: the confusion matrix counts as many pixels as one process's does."""
    totals = {}
    for processes in (1, 2):
        base, streams = job(tmp_path, f"fed{processes}")
        env = {**FAST, "SEMSEG_ENGINE": "torch", "SEMSEG_CPU_DEVICES": str(processes)}
        with writers(base, streams) as fifos:
            run = train_job(base=base, env=env)
        assert run.code == 0, run.failure
        assert fifos["train"].written == 2 and fifos["validation"].written == 2
        assert {"model_algo-1", "model_best.params"} <= run.model_files
        assert any(f"Starting {processes} training processes" in m for m in run.messages) == (processes == 2)
        evaluation = json.loads((base / "output" / "data" / "evaluation.json").read_text())
        totals[processes] = int(np.sum(evaluation["confusion_matrix"]))
    assert totals[2] == totals[1] > 0, totals
