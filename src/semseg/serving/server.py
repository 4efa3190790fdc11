"""`serve`: the managed algorithm's hosting contract on gunicorn, a pre-fork server.

Why pre-fork processes: prediction is CPU- or GPU-bound Python + MXNet work that holds the GIL between
operators, so one process per core (or per GPU) serves requests in parallel where threads would queue; each
worker loads the model after the fork (no MXNet engine or GPU context crosses a fork) and gunicorn restarts a
worker that dies or hangs past the timeout. SIGTERM: gunicorn stops accepting, lets running requests finish
(up to the graceful timeout) and exits.

The parent checks the model folder and the GPUs before starting workers, chooses what answers (the fastest model
the folder holds on the CPU: semseg.serving.choice), and has a child process load it (the parent itself loads no
framework), so a bad model ends the container at once (exit 2) with a message naming the file, instead of
workers failing in a loop.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication

from semseg.contract.errors import ClientError
from semseg.contract.job import JobPaths
from semseg.contract.model_folder import ModelFolder, read_model_folder
from semseg.contract.options import RunOptions, ServeOptions
from semseg.engines import ENGINES, Engine, PredictorSettings, Served, engine
from semseg.engines.gpus import visible_gpus
from semseg.serving import tta
from semseg.serving.app import App
from semseg.serving.choice import choose
from semseg.serving.tta import Augmentation
from semseg.threads import recommended_threads

log = logging.getLogger(__name__)

GRACEFUL_TIMEOUT_S = 30


@dataclass(frozen=True)
class ServeSettings:
    """What the server runs with: the settings as given, completed from this host's devices."""

    port: int
    workers: int  # default one per GPU, else one per physical core
    timeout_s: int  # a request running longer restarts its worker
    gpus: int
    threads_per_worker: int  # OpenMP threads of each worker on the CPU
    max_payload_mb: int
    max_concurrent_transforms: int  # default one per worker
    augmentation: Augmentation  # a request's test-time augmentation without custom attributes
    predictor: PredictorSettings

    @classmethod
    def of(cls, given: ServeOptions, gpus: int, cores: int, pixel_budget: int, served_by: Engine) -> ServeSettings:
        workers = given.workers or gpus or cores
        threads = max(1, cores // workers)
        return cls(
            port=given.port,
            workers=workers,
            timeout_s=given.timeout_s,
            gpus=gpus,
            threads_per_worker=threads,
            max_payload_mb=given.max_payload_mb,
            max_concurrent_transforms=given.max_concurrent_transforms or workers,
            augmentation=_default_augmentation(given.tta),
            predictor=PredictorSettings(pixel_budget, _autocast(given.autocast, served_by), 0 if gpus else threads),
        )


def _autocast(value: str | None, served_by: Engine) -> str | None:
    if value is not None and not served_by.autocast:
        others = [name for name in ENGINES if engine(name).autocast]
        raise ClientError(
            f"SEMSEG_SERVE_AUTOCAST={value} is for SEMSEG_ENGINE={' or '.join(others)}; the {served_by.label} "
            "engine serves in float32."
        )
    return value


def _default_augmentation(text: str | None) -> Augmentation:
    try:
        return tta.parse(text, where=f"Environment variable {tta.ENV}")
    except tta.BadAttributes as exc:
        raise ClientError(str(exc)) from None


@dataclass(frozen=True)
class ServePlan:
    """What the server will run: the checked model folder, what answers, and the settings."""

    folder: ModelFolder
    served: Served
    settings: ServeSettings


def plan(paths: JobPaths, options: RunOptions, given: ServeOptions) -> ServePlan:
    """Check the model and the GPUs (no framework loads here); ClientError naming what is wrong."""
    folder = read_model_folder(paths.model_dir, f"the model folder {paths.model_dir}")
    served_by = engine(options.engine)
    gpus = visible_gpus()
    log.info("SEMSEG_ENGINE=%s: serving with %s on %s", served_by.name, served_by.label,
             f"{len(gpus)} GPU(s)" if gpus else "the CPU")  # fmt: skip
    served_by.check_gpus(gpus)
    settings = ServeSettings.of(given, len(gpus), recommended_threads(), options.pixel_budget, served_by)
    served = choose(folder, given, len(gpus), served_by)
    _check_loads(folder, served)
    return ServePlan(folder, served, settings)


def _check_loads(folder: ModelFolder, served: Served) -> None:
    """ClientError unless the model loads (the weights into the network of hyperparams.json, or the export into
    its runtime): tried in a child process, so that this one (which forks the workers) loads no framework; a bad
    file ends `serve` before any worker."""
    started = time.monotonic()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        problem = pool.submit(served.check_model, folder).result()
    if problem:
        raise ClientError(problem)
    log.info("%s loads (checked in %.1f s)", served.label, time.monotonic() - started)


def run(served: ServePlan, threads: str) -> None:
    """Run the server until it is stopped (gunicorn exits the process); `threads`: each worker's OpenMP threads."""
    folder, settings = served.folder, served.settings
    log.info(
        "Serving %s: %s (%s, %s, %d classes) on port %d with %d worker(s) on %s",
        folder.path,
        served.served.label,
        folder.config.algorithm,
        folder.config.backbone,
        folder.config.num_classes,
        settings.port,
        settings.workers,
        f"{settings.gpus} GPU(s)" if settings.gpus else f"the CPU, {threads} thread(s) each",
    )
    if not settings.augmentation.plain:
        log.info(
            "%s: requests without custom attributes are answered with %s", tta.ENV, settings.augmentation.describe()
        )
    _Server(folder, served.served, settings).run()


class _Server(BaseApplication):
    def __init__(self, folder: ModelFolder, served: Served, settings: ServeSettings) -> None:
        self.folder = folder
        self.served = served
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
        predictor = self.served.load_predictor(self.folder, self.device, settings.predictor)
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
