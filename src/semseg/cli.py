"""The `train` entry point: argv, logging, run the job, and turn every ending into an exit code; `train serve`
hands over to the inference server (semseg.serving.server), which exits the process itself when stopped.

This is the only module of the training job that exits. Exit codes: 0 completed; 1 AlgorithmError (our fault);
2 ClientError (bad input; also a usage error); 128 + signal (143 SIGTERM, 130 SIGINT) when stopped after
saving checkpoint and artifacts. The failure file gets `ClientError: ...` or
`AlgorithmError: ...` with the useful part first, since SageMaker shows only its first 1024 characters.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import TextIO

from semseg import __version__
from semseg.cluster import must_exit_at_once
from semseg.config import Config, defaults
from semseg.errors import AlgorithmError, ClientError, JobError, Stopped
from semseg.files import write_text
from semseg.job import JobPaths, environ_summary, load_job
from semseg.signals import StopFlag
from semseg.threads import configure_openmp

log = logging.getLogger("semseg")

EXIT_OK = 0
EXIT_ALGORITHM_ERROR = 1
EXIT_CLIENT_ERROR = 2
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
LOG_FORMAT = "[%(asctime)s %(levelname)s %(thread)d] %(message)s"
LOG_DATEFMT = "%m/%d/%Y %H:%M:%S"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time of the record (it may be replaced, as pytest does)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup_logging() -> None:
    """Managed-algorithm style log lines on stdout (SageMaker sends stdout to CloudWatch)."""
    root = logging.getLogger()
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")  # file names that are not UTF-8 must not break the log
    if not any(isinstance(h, _StdoutHandler) for h in root.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
        root.addHandler(handler)
    root.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run `train`; return the exit code. `argv` excludes the program name."""
    args = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if environ is None else environ
    if args == ["serve"]:
        setup_logging()
        return _serve(env)
    if args not in ([], ["train"]):
        print(f"unknown arguments {args}\n{USAGE}", file=sys.stderr)
        return EXIT_CLIENT_ERROR
    setup_logging()
    if "mxnet" not in sys.modules:  # OpenMP reads its thread count once, when MXNet loads
        configure_openmp(os.environ)
    paths = JobPaths.from_environ(env)
    with StopFlag().installed() as stop:
        code = guarded(paths, lambda: _train(paths, env, stop))
    if code == EXIT_OK:
        log.info("Training job completed")
    return code


def _serve(environ: Mapping[str, str]) -> int:
    """Run the inference server (it exits the process when stopped); a bad model folder ends it at once."""
    from semseg.serving.server import serve

    try:
        serve(environ)
    except ClientError as exc:
        log.error("ClientError: %s", exc.message)
        return EXIT_CLIENT_ERROR
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
    job = load_job(paths)
    log.info("Reading default configuration: %s", json.dumps(defaults(), sort_keys=True))
    log.info("Provided configuration: %s", json.dumps(job.hyperparameters, sort_keys=True))
    config = Config.from_hyperparameters(job.hyperparameters)
    log.info("Final configuration: %s", json.dumps(config.to_hyperparameters(), sort_keys=True))
    from semseg.training import train  # the engine's framework loads inside, after the configuration checks

    try:
        train(job, config, environ, stop)
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
    """Console-script entry point."""
    code = main()
    if must_exit_at_once():  # a multi-host job failed here: skip MXNet's kvstore teardown, which would hang
        logging.shutdown()
        os._exit(code)
    sys.exit(code)
