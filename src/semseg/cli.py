"""The `train` console script (also `python -m semseg`, and the images' entry point): `train` (or no argument) runs
the training job, `serve` runs the inference server (semseg.serving.server, which exits the process itself when
stopped), `prepare ...` turns a data set into the channels (semseg.prepare, the same as `semseg-prepare ...`).

`main(argv, environ)` runs either and returns its `Outcome`; `run()`, the console script, is the one place that
ends the process. Exit codes: 0 completed; 1 AlgorithmError (our fault); 2 ClientError (bad input; also a usage
error); 128 + signal (143 SIGTERM, 130 SIGINT) when stopped after saving checkpoint and artifacts. The failure
file gets `ClientError: ...` or `AlgorithmError: ...` with the useful part first, since SageMaker shows only its
first 1024 characters.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

from semseg import __version__
from semseg.contract.errors import AlgorithmError, ClientError, ExitAtOnce, JobError, Stopped
from semseg.contract.files import write_text
from semseg.contract.job import JobPaths
from semseg.contract.options import RunOptions, ServeOptions, setting
from semseg.contract.signals import StopFlag
from semseg.logs import setup_logging
from semseg.threads import configure_openmp
from semseg.training import train

log = logging.getLogger("semseg")

EXIT_OK = 0
EXIT_ALGORITHM_ERROR = 1
EXIT_CLIENT_ERROR = 2
EXIT_STOPPED_BASE = 128  # + the signal: 143 after SIGTERM, 130 after SIGINT (no failure file)
COMMANDS: tuple[list[str], ...] = ([], ["train"], ["serve"])
VERSION_FLAGS = (["--version"], ["train", "--version"], ["serve", "--version"])
USAGE = (
    "usage: train [train | serve] [--version]\n"
    "  train (the default): runs the SageMaker training job described under $SAGEMAKER_BASE_DIR (default /opt/ml).\n"
    "  serve: answers inference requests on port 8080 with the model in $SAGEMAKER_BASE_DIR/model.\n"
    "  prepare LAYOUT ...: your data set into the four channels (semseg-prepare; `train prepare --help`)."
)


@dataclass(frozen=True)
class Outcome:
    """How a command ended: its exit code, and whether the process must end without the framework's teardown (a
    job of several hosts that failed here: freeing MXNet's kvstore would wait for the other hosts, see
    ExitAtOnce)."""

    code: int
    at_once: bool = False


def run() -> NoReturn:
    """The console script: `main` on this process's arguments and environment, then the end of the process.
    `train` runs in a child process that this one watches (semseg.watch), unless SEMSEG_WATCH=false."""
    argv, environ = sys.argv[1:], os.environ
    if argv in COMMANDS[:2] and _watching(environ):
        setup_logging()
        paths = JobPaths.from_environ(environ)
        from semseg.watch import watched

        sys.exit(watched(lambda: _end(main(argv, environ)), paths.failure_file, paths.model_dir))
    _end(main(argv, environ))


def main(argv: Sequence[str], environ: Mapping[str, str]) -> Outcome:
    """Run the command of `argv` (the arguments after the program's name) with the settings of `environ`."""
    if list(argv[:1]) == ["prepare"]:
        from semseg.prepare.cli import main as prepare

        return Outcome(prepare(argv[1:]))
    if list(argv) in VERSION_FLAGS:
        print(f"semseg {__version__}")
        return Outcome(EXIT_OK)
    if list(argv) not in COMMANDS:
        print(f"unknown arguments {list(argv)}\n{USAGE}", file=sys.stderr)
        return Outcome(EXIT_CLIENT_ERROR)
    setup_logging()
    paths = JobPaths.from_environ(environ)
    if list(argv) == ["serve"]:
        return Outcome(_serve(paths, environ))
    if "mxnet" not in sys.modules:  # OpenMP reads its thread count from the process's environment, once
        configure_openmp(os.environ)
    with StopFlag(at_once=_end_at_once).installed() as stop:
        outcome = guarded(paths, lambda: train(paths, environ, stop))
    if outcome.code == EXIT_OK:
        log.info("Training job completed")
    return outcome


def guarded(paths: JobPaths, action: Callable[[], object]) -> Outcome:
    """Run `action`; map how it ends to an Outcome and, on failure, the failure file."""
    try:
        action()
    except ExitAtOnce as ended:
        return Outcome(_code(paths, ended.cause), at_once=True)
    except Exception as exc:  # noqa: BLE001 - every fault is reported, never a bare traceback
        return Outcome(_code(paths, exc))
    except KeyboardInterrupt as exc:
        return Outcome(_code(paths, exc))
    return Outcome(EXIT_OK)


def _code(paths: JobPaths, exc: BaseException) -> int:
    """The exit code of a job that ended with `exc`, its failure file written where it failed."""
    if isinstance(exc, Stopped):
        log.warning("Training stopped by signal %d; checkpoint and artifacts are saved", exc.signum)
        return EXIT_STOPPED_BASE + exc.signum
    if isinstance(exc, KeyboardInterrupt):
        log.warning("Stopped at once by a second stop signal")
        return EXIT_STOPPED_BASE + signal.SIGINT
    if isinstance(exc, ClientError):
        return _fail(paths, exc, exc, EXIT_CLIENT_ERROR, with_traceback=False)
    if isinstance(exc, JobError):
        return _fail(paths, exc, exc, EXIT_ALGORITHM_ERROR, with_traceback=True)
    if isinstance(exc, MemoryError):
        error = AlgorithmError(
            "Out of memory. Lower mini_batch_size, validation_mini_batch_size or crop_size, "
            "or use an instance with more memory."
        )
        return _fail(paths, error, exc, EXIT_ALGORITHM_ERROR, with_traceback=True)
    return _fail(paths, AlgorithmError(f"{type(exc).__name__}: {exc}"), exc, EXIT_ALGORITHM_ERROR, with_traceback=True)


def _serve(paths: JobPaths, environ: Mapping[str, str]) -> int:
    """Run the inference server (it exits the process when stopped); a bad model folder ends it at once."""
    from semseg.serving import server

    try:
        served = server.plan(paths, RunOptions.from_environ(environ), ServeOptions.from_environ(environ))
    except ClientError as exc:
        log.error("ClientError: %s", exc.message)
        return EXIT_CLIENT_ERROR
    gpus = served.settings.gpus
    process_env: MutableMapping[str, str] = os.environ  # the workers inherit their OpenMP threads from it
    threads = "" if gpus else configure_openmp(process_env, served.settings.threads_per_worker)
    server.run(served, threads)
    return EXIT_OK


def _fail(paths: JobPaths, error: JobError, cause: BaseException, code: int, *, with_traceback: bool) -> int:
    text = f"{error.kind}: {error.message}"
    if with_traceback:
        text += "\n\n" + "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    log.error("%s", text)
    try:
        write_text(paths.failure_file, text)
    except OSError as write_error:
        log.error("Could not write the failure file %s: %s", paths.failure_file, write_error)
    return code


def _watching(environ: Mapping[str, str]) -> bool:
    """SEMSEG_WATCH; a value other than true or false is reported on stderr, and the job is watched."""
    try:
        return bool(setting(environ, "SEMSEG_WATCH"))
    except ClientError as exc:
        print(f"ClientError: {exc.message}", file=sys.stderr)
        return True


def _end_at_once(signum: int) -> None:
    """A second stop signal: end now, with the processes this one started (data loaders, torch's workers). Files
    being written are lost; every earlier file is intact (each write is atomic)."""
    log.warning("Stopped at once by a second stop signal (%d)", signum)
    for child in multiprocessing.active_children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid or 0, signal.SIGKILL)
    logging.shutdown()
    os._exit(EXIT_STOPPED_BASE + signum)


def _end(outcome: Outcome) -> NoReturn:
    """End the process with the outcome's code; without the framework's teardown when it says so."""
    if outcome.at_once:
        logging.shutdown()
        os._exit(outcome.code)
    sys.exit(outcome.code)
