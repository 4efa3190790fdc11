"""Stop requests: SIGTERM (StopTrainingJob, spot interruption; SIGKILL follows after 120 s) and SIGINT.

The first signal sets a flag that the training loop checks after every iteration (a safe point); the job
then saves its checkpoint and artifacts and ends. A second signal stops at once: `at_once` ends the process
(the CLI's), else a KeyboardInterrupt is raised.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Protocol

log = logging.getLogger(__name__)


STOPS = (signal.SIGTERM, signal.SIGINT)


def worker_signals() -> None:
    """In a data-loading worker forked from the job's process: SIGTERM ends it again (it inherited the job's stop
    handler, which only sets a flag, so a pool terminating its workers would wait for them forever), and SIGINT is
    ignored (a terminal's Ctrl-C reaches the whole process group; the job stops its workers itself)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def forked_workers_signals() -> Iterator[None]:
    """While the context lasts, this process's handlers are what `worker_signals` gives a worker, for a library
    that forks its workers there without a hook of ours (MXNet's DataLoader); the job's handlers come back after."""
    previous = {sig: signal.getsignal(sig) for sig in STOPS}
    worker_signals()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class StopSignal(Protocol):
    """A stop request: true once asked; `signum` the signal that asked (None before)."""

    @property
    def signum(self) -> int | None: ...

    def __call__(self) -> bool: ...


class StopFlag:
    """Set by a signal handler; read by the loop. `signum` is the first signal received."""

    def __init__(self, at_once: Callable[[int], None] | None = None) -> None:
        self.signum: int | None = None
        self.at_once = at_once  # ends the process on a second signal; without it, KeyboardInterrupt is raised

    def __call__(self) -> bool:
        return self.signum is not None

    def request(self, signum: int) -> None:
        if self.signum is not None:
            if self.at_once is not None:  # an exception raised here could land in a __del__ and be ignored
                self.at_once(signum)
            raise KeyboardInterrupt(f"second stop signal {signum}: stopping at once")
        self.signum = signum
        log.warning("Received signal %d: stopping at the next safe point, then saving", signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopFlag]:
        """Handle SIGTERM and SIGINT (main thread only) while the context lasts; restore the old handlers."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            self.request(signum)

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
