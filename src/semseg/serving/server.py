"""`serve`: the managed algorithm's hosting contract on gunicorn, a pre-fork server.

Why pre-fork processes: prediction is CPU- or GPU-bound Python + MXNet work that holds the GIL between
operators, so one process per core (or per GPU) serves requests in parallel where threads would queue; each
worker loads the model after the fork (no MXNet engine or GPU context crosses a fork) and gunicorn restarts a
worker that dies or hangs past the timeout. SIGTERM: gunicorn stops accepting, lets running requests finish
(up to the graceful timeout) and exits.

The parent checks the model folder and the GPUs before starting workers, and has a child process load the
weights into the network of hyperparams.json (the parent itself loads no framework), so a bad model ends the
container at once (exit 2) with a message naming the file, instead of workers failing in a loop.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication

from semseg.contract.errors import ClientError
from semseg.contract.job import JobPaths
from semseg.contract.model_folder import ModelFolder, read_model_folder
from semseg.contract.options import RunOptions, env_int
from semseg.engines.gpus import Gpu, visible_gpus
from semseg.engines.mxnet.devices import check_supported
from semseg.serving import tta
from semseg.serving.app import MAX_PAYLOAD_MB, App
from semseg.serving.tta import PLAIN, Augmentation
from semseg.threads import recommended_threads

log = logging.getLogger(__name__)

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT_S = 60
GRACEFUL_TIMEOUT_S = 30
MAX_PAYLOAD_LIMIT_MB = 100  # batch transform's largest MaxPayloadInMB
_PAYLOAD_ENV = "SAGEMAKER_MAX_PAYLOAD_IN_MB"  # batch transform's MaxPayloadInMB
AUTOCAST_ENV = "SEMSEG_SERVE_AUTOCAST"
AUTOCAST_TYPES = ("bfloat16", "float16")
# One pass up to 1 Mpx: about 1 GB of CPU memory for ResNet-50 networks (a 12 Mpx pass took 10.9 GB).


@dataclass(frozen=True)
class ServeSettings:
    port: int  # SAGEMAKER_BIND_TO_PORT
    workers: int  # SAGEMAKER_MODEL_SERVER_WORKERS; default one per GPU, else one per physical core
    timeout_s: int  # SAGEMAKER_MODEL_SERVER_TIMEOUT: a request running longer restarts its worker
    gpus: int
    threads_per_worker: int  # OpenMP threads of each worker on the CPU
    pixel_budget: int  # SEMSEG_PIXEL_BUDGET: larger images are predicted window by window
    max_payload_mb: int = MAX_PAYLOAD_MB  # SAGEMAKER_MAX_PAYLOAD_IN_MB (batch transform's MaxPayloadInMB, <= 100)
    max_concurrent_transforms: int = 1  # SAGEMAKER_MAX_CONCURRENT_TRANSFORMS; default one per worker
    augmentation: Augmentation = PLAIN  # SEMSEG_TTA: a request's test-time augmentation without custom attributes
    engine: str = "mxnet"  # SEMSEG_ENGINE: whose network predicts
    autocast: str | None = None  # SEMSEG_SERVE_AUTOCAST (torch): bfloat16 or float16; unset: float32

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], gpus: int, cores: int, pixel_budget: int, engine: str = "mxnet"
    ) -> ServeSettings:
        workers = max(1, env_int(environ, "SAGEMAKER_MODEL_SERVER_WORKERS", gpus or cores))
        return cls(
            port=env_int(environ, "SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT),
            workers=workers,
            timeout_s=max(1, env_int(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT", DEFAULT_TIMEOUT_S)),
            gpus=gpus,
            threads_per_worker=max(1, cores // workers),
            pixel_budget=pixel_budget,
            max_payload_mb=min(
                MAX_PAYLOAD_LIMIT_MB, max(1, env_int(environ, "SAGEMAKER_MAX_PAYLOAD_IN_MB", MAX_PAYLOAD_MB))
            ),
            max_concurrent_transforms=max(1, env_int(environ, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", workers)),
            augmentation=_default_augmentation(environ),
            engine=engine,
            autocast=_autocast(environ, engine),
        )


def _autocast(environ: Mapping[str, str], engine: str) -> str | None:
    value = environ.get(AUTOCAST_ENV, "").strip().lower() or None
    if value is None:
        return None
    if engine != "torch":
        raise ClientError(f"{AUTOCAST_ENV}={value} is for SEMSEG_ENGINE=torch; the MXNet engine serves in float32.")
    if value not in AUTOCAST_TYPES:
        raise ClientError(f"{AUTOCAST_ENV}={value!r}: give bfloat16 or float16, or leave it unset (float32).")
    return value


def _default_augmentation(environ: Mapping[str, str]) -> Augmentation:
    try:
        return tta.parse(environ.get(tta.ENV), where=f"Environment variable {tta.ENV}")
    except tta.BadAttributes as exc:
        raise ClientError(str(exc)) from None


@dataclass(frozen=True)
class ServePlan:
    """What the server will run: the checked model folder and the settings."""

    folder: ModelFolder
    settings: ServeSettings


def plan(paths: JobPaths, options: RunOptions, environ: Mapping[str, str]) -> ServePlan:
    """Check the model and the GPUs (no framework loads here); ClientError naming what is wrong."""
    folder = read_model_folder(paths.model_dir, f"the model folder {paths.model_dir}")
    gpus: list[Gpu] = visible_gpus()
    if options.engine == "torch":  # the Hopper image: PyTorch predicts, on every GPU it has (Hopper included)
        log.info("SEMSEG_ENGINE=torch: serving with PyTorch on %s", f"{len(gpus)} GPU(s)" if gpus else "the CPU")
    else:
        check_supported(gpus)
    settings = ServeSettings.from_environ(
        environ, len(gpus), recommended_threads(), options.pixel_budget, options.engine
    )
    _check_loads(folder, options.engine)
    return ServePlan(folder, settings)


def _check_loads(folder: ModelFolder, engine: str) -> None:
    """ClientError unless the weights load into the network of hyperparams.json: tried in a child process, so
    that this one (which forks the workers) loads no framework; a bad file ends `serve` before any worker."""
    started = time.monotonic()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        problem = pool.submit(_check_model, folder, engine).result()
    if problem:
        raise ClientError(problem)
    log.info("%s loads into its network (checked in %.1f s)", folder.weights, time.monotonic() - started)


def _check_model(folder: ModelFolder, engine: str) -> str:
    """In the child process: the engine's answer (its check_model)."""
    if engine == "torch":
        from semseg.engines.torch.serve import check_model as check_torch

        return check_torch(folder)
    from semseg.engines.mxnet.predict import check_model

    return check_model(folder)


def run(served: ServePlan, threads: str) -> None:
    """Run the server until it is stopped (gunicorn exits the process); `threads`: each worker's OpenMP threads."""
    folder, settings = served.folder, served.settings
    log.info(
        "Serving %s (%s, %s, %d classes) with the %s engine on port %d with %d worker(s) on %s",
        folder.weights,
        folder.config.algorithm,
        folder.config.backbone,
        folder.config.num_classes,
        "PyTorch" if settings.engine == "torch" else "MXNet",
        settings.port,
        settings.workers,
        f"{settings.gpus} GPU(s)" if settings.gpus else f"the CPU, {threads} thread(s) each",
    )
    if not settings.augmentation.plain:
        log.info(
            "%s: requests without custom attributes are answered with %s", tta.ENV, settings.augmentation.describe()
        )
    _Server(folder, settings).run()


class _Server(BaseApplication):
    def __init__(self, folder: ModelFolder, settings: ServeSettings) -> None:
        self.folder = folder
        self.settings = settings
        self.device = "cpu"  # a worker's: set after its fork (post_fork), "gpu:<id>" or "cpu"
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": f"0.0.0.0:{self.settings.port}",
            "workers": self.settings.workers,
            "worker_class": "sync",
            "timeout": self.settings.timeout_s,
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "keepalive": 5,
            "errorlog": "-",
            "loglevel": "info",
            "pre_fork": self._assign_device,
            "post_fork": _take_device,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> App:
        """In a worker: the model on this worker's device, ready to answer."""
        settings = self.settings
        predictor: Any
        if settings.engine == "torch":
            from semseg.engines.torch.serve import load_predictor as load_torch

            predictor = load_torch(self.folder, self.device, settings.pixel_budget, settings.autocast)
        else:
            from semseg.engines.mxnet.predict import load_predictor

            predictor = load_predictor(self.folder, self.device, settings.pixel_budget)
        return App(predictor, settings.max_concurrent_transforms, settings.max_payload_mb, settings.augmentation)

    def _assign_device(self, server: Any, worker: Any) -> None:
        """In the parent, before a worker starts: the GPU no live worker holds (workers restart after faults)."""
        if not self.settings.gpus:
            worker.semseg_device = "cpu"
            return
        taken = {getattr(w, "semseg_device", None) for w in server.WORKERS.values()}
        free = [f"gpu:{i}" for i in range(self.settings.gpus) if f"gpu:{i}" not in taken]
        worker.semseg_device = free[0] if free else f"gpu:{worker.age % self.settings.gpus}"


def _take_device(server: Any, worker: Any) -> None:
    """In the worker, after the fork: the device the parent chose for it."""
    server.app.device = worker.semseg_device
