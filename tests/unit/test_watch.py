"""semseg.watch in a fresh process each (it forks and takes over the stop signals, as the `train` entry does)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def watch(tmp_path: Path, job: str, *, signal_after: float | None = None) -> tuple[int, str]:
    """Run `job` (the body of the watched function) under semseg.watch.watched; its exit code and output."""
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "model_best.params").write_bytes(b"kept")
    body = textwrap.indent(textwrap.dedent(job).strip(), "    ")
    code = "\n".join(
        [
            "import os, signal, sys, time",
            "from pathlib import Path",
            "from semseg.logs import setup_logging",
            "from semseg.watch import watched",
            "setup_logging()",
            f"base = Path({str(tmp_path)!r})",
            "def job():",
            body,
            'sys.exit(watched(job, base / "failure", base / "model"))',
        ]
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if signal_after is not None:
        time.sleep(signal_after)
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def test_a_killed_job_leaves_a_failure_file_written_by_the_watcher(tmp_path: Path) -> None:
    code, out = watch(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)")
    assert code == 128 + signal.SIGKILL, out
    failure = (tmp_path / "failure").read_text()
    assert failure.startswith("AlgorithmError: The training process (pid ")
    assert "was killed by signal 9 (SIGKILL)" in failure and "lower mini_batch_size" in failure
    assert failure.endswith(f"Kept in {tmp_path / 'model'}: model_best.params.")


def test_a_crash_is_named_and_the_jobs_own_failure_file_is_kept(tmp_path: Path) -> None:
    code, out = watch(tmp_path, "os.kill(os.getpid(), signal.SIGSEGV)")
    assert code == 128 + signal.SIGSEGV and "crashed in native code" in (tmp_path / "failure").read_text(), out
    code, _ = watch(tmp_path, "Path(base / 'failure').write_text('ClientError: its own'); os.abort()")
    assert code == 128 + signal.SIGABRT and (tmp_path / "failure").read_text() == "ClientError: its own"


@pytest.mark.parametrize("exit_code", [0, 2, 143])
def test_the_jobs_exit_code_is_the_watchers_and_nothing_is_written(tmp_path: Path, exit_code: int) -> None:
    code, _ = watch(tmp_path, f"os._exit({exit_code})")
    assert code == exit_code and not (tmp_path / "failure").exists()


def test_a_stop_signal_is_passed_on_to_the_job(tmp_path: Path) -> None:
    job = """
    signal.signal(signal.SIGTERM, lambda s, f: (print("job got", s, flush=True), os._exit(128 + s)))
    print("ready", flush=True)
    time.sleep(30)
    os._exit(0)
    """
    started = time.monotonic()
    code, out = watch(tmp_path, job, signal_after=2.0)
    assert code == 143 and "job got 15" in out, out
    assert time.monotonic() - started < 30, "the job ended on the signal, not after its sleep"
    assert not (tmp_path / "failure").exists()
