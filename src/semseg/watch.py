"""The `train` process watches the training job from outside: it forks, the child runs the job, and the parent
(PID 1 in the container) passes stop signals on and waits. When the child is killed before it could say why
(the kernel's out-of-memory killer sends SIGKILL; a crash in native code sends SIGSEGV or SIGABRT), the parent
writes the failure file and exits 128 + the signal, so a job never ends without a reason. Pure standard library:
the parent loads no framework.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from semseg.contract.files import write_text

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent ends
KILLED = (
    "AlgorithmError: The training process (pid {pid}) was killed by signal {signum} ({name}) after {seconds:.0f} s, "
    "before it could report why. {hint} Kept in {model_dir}: {kept}."
)
OUT_OF_MEMORY = (
    "When the host runs out of memory, the kernel kills the largest process this way: lower mini_batch_size, "
    "validation_mini_batch_size or crop_size, or use an instance with more memory."
)
CRASHED = "It crashed in native code (MXNet, PyTorch, OpenCV or a driver); its log above shows how far it got."


def watched(job: Callable[[], None], failure_file: Path, model_dir: Path) -> int:
    """Run `job` (which ends its process itself) in a child process; the exit code for this one."""
    started = time.monotonic()
    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # a signal during the fork waits for the handlers below
    pid = os.fork()
    if pid == 0:  # the child: its own process group (a terminal's Ctrl-C reaches the parent, which passes it on)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        os.setpgid(0, 0)
        _die_with_parent()
        job()
        os._exit(0)  # `job` exits the process itself; never here
    for stop in stops:
        signal.signal(stop, _pass_on(pid))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
    _, status = os.waitpid(pid, 0)  # retried after each signal (PEP 475)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    signum = os.WTERMSIG(status)
    if signum in stops:  # stopped before it could install its own handling (at start): a stop, not a failure
        log.warning("The training process was stopped by signal %d before it could save anything", signum)
    elif not _recent(failure_file, started):
        _report_killed(pid, signum, time.monotonic() - started, failure_file, model_dir)
    return 128 + signum


def _pass_on(pid: int) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    return handler


def _die_with_parent() -> None:
    """The training ends when the watching parent is killed (outside a container nothing else would end it)."""
    if sys.platform == "linux":
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


def _recent(path: Path, started: float) -> bool:
    """Whether the child wrote `path` (its own failure file) during this job."""
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return False
    return age <= time.monotonic() - started


def _report_killed(pid: int, signum: int, seconds: float, failure_file: Path, model_dir: Path) -> None:
    name = signal.Signals(signum).name
    hint = OUT_OF_MEMORY if signum == signal.SIGKILL else CRASHED
    kept = ", ".join(sorted(p.name for p in model_dir.iterdir())) if model_dir.is_dir() else "nothing"
    text = KILLED.format(pid=pid, signum=signum, name=name, seconds=seconds, hint=hint, model_dir=model_dir, kept=kept)
    log.error("%s", text)
    try:
        write_text(failure_file, text)
    except OSError as error:
        log.error("Could not write the failure file %s: %s", failure_file, error)
