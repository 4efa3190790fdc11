"""SageMaker's Pipe mode, emulated: per channel and pass a FIFO `<channel>_<n>`, made when the one before it
was written and closed, holding an augmented manifest's RecordIO records (image, mask, image, mask, ...).
Standard library only, so that the container tests (whose environment has no semseg) use it too; its framing
is SageMaker's, written independently of the product's reader on purpose."""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

RECORDIO_MAGIC = 0xCED7230A

Stream = Callable[[int], bytes]  # pass n -> the bytes written to FIFO <channel>_<n>


def frame(payload: bytes) -> bytes:
    """One whole RecordIO record: magic, length (continuation flag 0), payload padded to 4 bytes."""
    return struct.pack("<II", RECORDIO_MAGIC, len(payload)) + payload + b"\0" * (-len(payload) % 4)


def manifest_records(images: Path, masks: Path) -> list[bytes]:
    """One framed image record and one framed mask record per pair of a File-mode split, sorted by name."""
    records = []
    for image in sorted(p for p in images.iterdir() if p.suffix in (".jpg", ".png")):
        records += [frame(image.read_bytes()), frame((masks / f"{image.stem}.png").read_bytes())]
    return records


def to_pipe_mode(base: Path, splits: Iterable[str] = ("train", "validation")) -> dict[str, bytes]:
    """Turn a File-mode job folder's splits into Pipe-mode channels: their folders move out of the data
    folder and inputdataconfig.json says Pipe + RecordIO. Returns each split's stream."""
    data = base / "input" / "data"
    config_file = base / "input" / "config" / "inputdataconfig.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    streams = {}
    for split in splits:
        streams[split] = b"".join(manifest_records(data / split, data / f"{split}_annotation"))
        for name in (split, f"{split}_annotation"):
            shutil.move(str(data / name), str(base / f"file-mode-{name}"))
            config.pop(name, None)
        config[split] = {
            "TrainingInputMode": "Pipe",
            "RecordWrapperType": "RecordIO",
            "S3DistributionType": "FullyReplicated",
            "ContentType": "application/x-recordio",
        }
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(config))
    return streams


class PipeWriter:
    """Writes `stream(n)` into FIFO `<folder>/<channel>_<n>` for n = 0, 1, ... like SageMaker's agent; use
    as a context manager. `passes` bounds how many FIFOs it makes; `written` counts the finished ones."""

    def __init__(self, folder: Path, channel: str, stream: Stream, passes: int = 100) -> None:
        self.folder = folder
        self.channel = channel
        self.stream = stream
        self.passes = passes
        self.written = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PipeWriter:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop writing and remove the FIFOs: the next container gets fresh ones from <channel>_0."""
        self._done.set()
        self._thread.join(timeout=10)
        for path in self.folder.glob(f"{self.channel}_[0-9]*"):
            path.unlink()

    def _run(self) -> None:
        for n in range(self.passes):
            path = self.folder / f"{self.channel}_{n}"
            os.mkfifo(path)
            fd = self._open(path)
            if fd is None:
                return
            try:
                os.set_blocking(fd, True)
                view = memoryview(self.stream(n))
                while view:
                    view = view[os.write(fd, view[: 1 << 16]) :]
            except BrokenPipeError:
                return  # the reader gave up (a test of a failing job)
            finally:
                os.close(fd)
            self.written += 1

    def _open(self, path: Path) -> int | None:
        """The FIFO opened for writing once a reader has opened it, or None when the test ended first."""
        while not self._done.is_set():
            try:
                return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
            time.sleep(0.02)
        return None
