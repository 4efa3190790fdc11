"""The `train` entry point: argv, logging, run the job, and turn every ending into an exit code; `train serve`
hands over to the inference server (semseg.serving.server), which exits the process itself when stopped.

This is the only module of the training job that exits. Exit codes: 0 completed; 1 AlgorithmError (our fault);
2 ClientError (bad input; also a usage error); 128 + signal (143 SIGTERM, 130 SIGINT) when stopped after
saving checkpoint and artifacts. The failure file gets `ClientError: ...` or
`AlgorithmError: ...` with the useful part first, since SageMaker shows only its first 1024 characters.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence

from semseg import __version__
from semseg.contract.config import Config, defaults
from semseg.contract.earlier import set_aside_earlier_outputs
from semseg.contract.errors import AlgorithmError, ClientError, ExitAtOnce, JobError, Stopped
from semseg.contract.files import write_text
from semseg.contract.job import JobPaths, environ_summary, load_job
from semseg.contract.options import RunOptions
from semseg.contract.signals import StopFlag
from semseg.logs import setup_logging
from semseg.threads import configure_openmp

log = logging.getLogger("semseg")

EXIT_OK = 0
EXIT_ALGORITHM_ERROR = 1
EXIT_CLIENT_ERROR = 2
WATCH_ENV = "SEMSEG_WATCH"  # "false": train in this process, without the watching parent
EXIT_STOPPED_BASE = 128  # + the signal: 143 after SIGTERM, 130 after SIGINT (no failure file)
USAGE = (
    "usage: train [train | serve]\n"
    "  train (the default): runs the SageMaker training job described under $SAGEMAKER_BASE_DIR (default /opt/ml).\n"
    "  serve: answers inference requests on port 8080 with the model in $SAGEMAKER_BASE_DIR/model."
)
NO_DRIVER = (
    "This is the GPU image: its MXNet needs the NVIDIA driver (libcuda.so.1), and there is none. Run it on a GPU "
    "instance (ml.p3, ml.g4dn, ml.g5, ml.p4d, ml.g6, ml.g6e) or with `docker run --gpus all` on a host with "
    "NVIDIA GPUs, or use the CPU image."
)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run `train`; return the exit code. `argv` excludes the program name."""
    return _main(argv, environ)[0]


def _main(argv: Sequence[str] | None, environ: Mapping[str, str] | None) -> tuple[int, bool]:
    """(exit code, whether to end the process without the framework's teardown: see ExitAtOnce)."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    if args not in ([], ["train"], ["serve"]):
        print(f"unknown arguments {args}\n{USAGE}", file=sys.stderr)
        return EXIT_CLIENT_ERROR, False
    setup_logging()
    paths = JobPaths.from_environ(env)
    if args == ["serve"]:
        return _serve(paths, env), False
    if "mxnet" not in sys.modules:  # OpenMP reads its thread count once, when MXNet loads
        configure_openmp(os.environ)
    at_once = False

    def train_job() -> None:
        nonlocal at_once
        try:
            _train(paths, env, stop)
        except ExitAtOnce as ended:
            at_once = True
            raise ended.cause from None

    with StopFlag(at_once=_end_at_once).installed() as stop:
        code = guarded(paths, train_job)
    if code == EXIT_OK:
        log.info("Training job completed")
    return code, at_once


def _end_at_once(signum: int) -> None:
    """A second stop signal: end now, with the processes this one started (data loaders, torch's workers). Files
    being written are lost; every earlier file is intact (each write is atomic)."""
    log.warning("Stopped at once by a second stop signal (%d)", signum)
    for child in multiprocessing.active_children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid or 0, signal.SIGKILL)
    logging.shutdown()
    os._exit(EXIT_STOPPED_BASE + signum)


def _serve(paths: JobPaths, environ: Mapping[str, str]) -> int:
    """Run the inference server (it exits the process when stopped); a bad model folder ends it at once."""
    from semseg.serving import server

    try:
        served = server.plan(paths, RunOptions.from_environ(environ), environ)
    except ClientError as exc:
        log.error("ClientError: %s", exc.message)
        return EXIT_CLIENT_ERROR
    gpus = served.settings.gpus
    threads = "" if gpus else configure_openmp(os.environ, served.settings.threads_per_worker)  # workers inherit it
    server.run(served, threads)
    return EXIT_OK


def guarded(paths: JobPaths, action: Callable[[], object]) -> int:
    """Run `action`; map how it ends to an exit code and, on failure, the failure file."""
    try:
        action()
    except Stopped as stop:
        log.warning("Training stopped by signal %d; checkpoint and artifacts are saved", stop.signum)
        return EXIT_STOPPED_BASE + stop.signum
    except KeyboardInterrupt:
        log.warning("Stopped at once by a second stop signal")
        return EXIT_STOPPED_BASE + signal.SIGINT
    except ClientError as exc:
        return _fail(paths, exc, EXIT_CLIENT_ERROR, with_traceback=False)
    except JobError as exc:
        return _fail(paths, exc, EXIT_ALGORITHM_ERROR, with_traceback=True)
    except MemoryError:
        err = AlgorithmError(
            "Out of memory. Lower mini_batch_size, validation_mini_batch_size or crop_size, "
            "or use an instance with more memory."
        )
        return _fail(paths, err, EXIT_ALGORITHM_ERROR, with_traceback=True)
    except Exception as exc:  # noqa: BLE001 - every other fault is ours: report it, never a bare traceback
        err = AlgorithmError(f"{type(exc).__name__}: {exc}")
        return _fail(paths, err, EXIT_ALGORITHM_ERROR, with_traceback=True)
    return EXIT_OK


def _train(paths: JobPaths, environ: Mapping[str, str], stop: StopFlag) -> None:
    log.info("semseg %s, base folder %s", __version__, paths.base_dir)
    log.info("Environment: %s", environ_summary(environ))
    set_aside_earlier_outputs(paths)
    job = load_job(paths)
    log.info("Reading default configuration: %s", json.dumps(defaults(), sort_keys=True))
    log.info("Provided configuration: %s", json.dumps(job.hyperparameters, sort_keys=True))
    config = Config.from_hyperparameters(job.hyperparameters)
    log.info("Final configuration: %s", json.dumps(config.to_hyperparameters(), sort_keys=True))
    options = RunOptions.from_environ(environ)
    from semseg.training import train  # the engine's framework loads inside, after the configuration checks

    try:
        train(job, config, options, stop)
    except OSError as exc:  # the GPU image's MXNet cannot load without the driver's libcuda.so.1
        if "libcuda.so" not in str(exc):
            raise
        raise ClientError(NO_DRIVER) from None


def _fail(paths: JobPaths, exc: JobError, code: int, *, with_traceback: bool) -> int:
    text = f"{exc.kind}: {exc.message}"
    if with_traceback:
        text += "\n\n" + traceback.format_exc()
    log.error("%s", text)
    try:
        write_text(paths.failure_file, text)
    except OSError as write_error:
        log.error("Could not write the failure file %s: %s", paths.failure_file, write_error)
    return code


def run() -> None:
    """Console-script entry point: `train` runs in a child process that this one watches (semseg.watch)."""
    if sys.argv[1:] in ([], ["train"]) and os.environ.get(WATCH_ENV, "true").lower() != "false":
        from semseg.watch import watched

        setup_logging()
        paths = JobPaths.from_environ(os.environ)
        sys.exit(watched(_run, paths.failure_file, paths.model_dir))
    _run()


def _run() -> None:
    code, at_once = _main(None, None)
    if at_once:  # a multi-host job failed here: skip MXNet's kvstore teardown, which would hang
        logging.shutdown()
        os._exit(code)
    sys.exit(code)
