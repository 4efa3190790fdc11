"""Read one of SageMaker's Pipe-mode FIFOs without ever blocking beyond a timeout or a stop request.

A FIFO is opened non-blocking (so opening never waits for the writer) and read after `poll` says so. On
Linux, poll on such a FIFO reports nothing until a writer has connected, then data, then a hang-up when the
writer closes: so "no writer yet" is told apart from "the stream ended". Every wait is sliced into short
polls that check the stop flag, so SIGTERM ends a job that waits on its data within a second.
"""

from __future__ import annotations

import fcntl
import os
import select
import stat
import time
from collections.abc import Callable
from pathlib import Path

from semseg.contract.errors import ClientError

_SLICE_S = 0.2  # how often a wait checks the stop flag
_CHUNK = 1 << 20
_F_SETPIPE_SZ = 1031


class FifoStopped(Exception):
    """A stop request ended the wait; the caller ends its epoch (the loop then saves and exits)."""


class Fifo:
    """One FIFO (or plain file) of channel `channel`, opened for reading; use as a context manager."""

    def __init__(self, path: Path, channel: str, timeout_s: float, should_stop: Callable[[], bool]) -> None:
        self.path = path
        self.channel = channel
        self.timeout_s = timeout_s
        self.should_stop = should_stop
        self._buffer = bytearray()
        self._start = 0  # bytes of the buffer already handed out (dropped every _CHUNK: no memmove per record)
        self._eof = False
        self._received = 0
        self._fd = self._open()

    def __enter__(self) -> Fifo:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def read_exact(self, size: int) -> bytes:
        """`size` bytes, fewer only where the stream ends."""
        while len(self._buffer) - self._start < size and not self._eof:
            self._fill()
        end = min(self._start + size, len(self._buffer))
        with memoryview(self._buffer) as view:
            data = bytes(view[self._start : end])
        self._start = end
        if self._start >= _CHUNK:
            del self._buffer[: self._start]
            self._start = 0
        return data

    def _open(self) -> int:
        deadline = time.monotonic() + self.timeout_s
        while not self.path.exists():
            self._wait_slice(deadline, "never appeared")
            time.sleep(_SLICE_S)
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.set_blocking(fd, True)  # a plain file (a test, or a stream saved to disk) reads as is
            return fd
        try:  # a 1 MiB pipe (Linux's default limit for anyone) instead of 64 KiB: fewer wake-ups of both sides
            fcntl.fcntl(fd, _F_SETPIPE_SZ, _CHUNK)
        except OSError:
            pass
        return fd

    def _fill(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        poller = select.poll()
        poller.register(self._fd, select.POLLIN | select.POLLHUP)
        while True:
            if poller.poll(int(_SLICE_S * 1000)):
                try:
                    chunk = os.read(self._fd, _CHUNK)
                except BlockingIOError:
                    continue
                if chunk:
                    self._buffer += chunk
                    self._received += len(chunk)
                else:
                    self._eof = True
                return
            stalled = f"sent nothing more after {self._received:,} bytes" if self._received else "got no writer"
            self._wait_slice(deadline, stalled)

    def _wait_slice(self, deadline: float, what: str) -> None:
        if self.should_stop():
            raise FifoStopped(str(self.path))
        if time.monotonic() > deadline:
            raise ClientError(
                f"Channel {self.channel!r}: the Pipe-mode FIFO {self.path} {what} in {self.timeout_s:g} s "
                "(SEMSEG_PIPE_TIMEOUT). Check that the channel's data reaches the job (its S3 URI, "
                "TrainingInputMode Pipe), or raise SEMSEG_PIPE_TIMEOUT for slow streams."
            )
