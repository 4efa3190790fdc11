"""`serve`: the managed algorithm's hosting contract on gunicorn, a pre-fork server.

Why pre-fork processes: prediction is CPU- or GPU-bound Python + MXNet work that holds the GIL between
operators, so one process per core (or per GPU) serves requests in parallel where threads would queue; each
worker loads the model after the fork (no MXNet engine or GPU context crosses a fork) and gunicorn restarts a
worker that dies or hangs past the timeout. SIGTERM: gunicorn stops accepting, lets running requests finish
(up to the graceful timeout) and exits.

The parent checks the model folder and the GPUs before starting workers, so a bad model ends the container
at once with a message naming the file, instead of workers failing in a loop.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication

from semseg.devices import Gpu, check_supported, visible_gpus
from semseg.job import JobPaths
from semseg.model_folder import ModelFolder, read_model_folder
from semseg.options import engine_from, env_int
from semseg.serving.app import App
from semseg.sliding import DEFAULT_PIXEL_BUDGET
from semseg.threads import recommended_threads

log = logging.getLogger(__name__)

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT_S = 60
GRACEFUL_TIMEOUT_S = 30
# One pass up to 1 Mpx: about 1 GB of CPU memory for ResNet-50 networks (a 12 Mpx pass took 10.9 GB).
DEVICE_ENV = "SEMSEG_SERVE_DEVICE"  # set by the parent for each worker: "gpu:<id>" or "cpu"


@dataclass(frozen=True)
class ServeSettings:
    port: int  # SAGEMAKER_BIND_TO_PORT
    workers: int  # SAGEMAKER_MODEL_SERVER_WORKERS; default one per GPU, else one per physical core
    timeout_s: int  # SAGEMAKER_MODEL_SERVER_TIMEOUT: a request running longer restarts its worker
    gpus: int
    threads_per_worker: int  # OpenMP threads of each worker on the CPU
    pixel_budget: int  # SEMSEG_PIXEL_BUDGET: larger images are predicted window by window

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], gpus: int, cores: int) -> ServeSettings:
        workers = max(1, env_int(environ, "SAGEMAKER_MODEL_SERVER_WORKERS", gpus or cores))
        return cls(
            port=env_int(environ, "SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT),
            workers=workers,
            timeout_s=max(1, env_int(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT", DEFAULT_TIMEOUT_S)),
            gpus=gpus,
            threads_per_worker=max(1, cores // workers),
            pixel_budget=max(1, env_int(environ, "SEMSEG_PIXEL_BUDGET", DEFAULT_PIXEL_BUDGET)),
        )


def serve(environ: Mapping[str, str]) -> None:
    """Check the model and the GPUs, then run the server until it is stopped (gunicorn exits the process)."""
    model_dir = JobPaths.from_environ(environ).model_dir
    folder = read_model_folder(model_dir, f"the model folder {model_dir}")
    if engine_from(environ) == "torch":  # the Hopper image: its MXNet (which serves) is the CPU build
        gpus: list[Gpu] = []
        log.info("SEMSEG_ENGINE=torch: serving with the image's CPU MXNet, on the CPU")
    else:
        gpus = visible_gpus()
        check_supported(gpus)
    settings = ServeSettings.from_environ(environ, len(gpus), recommended_threads())
    if not gpus:
        os.environ.setdefault("OMP_NUM_THREADS", str(settings.threads_per_worker))
    log.info(
        "Serving %s (%s, %s, %d classes) on port %d with %d worker(s) on %s",
        folder.weights,
        folder.config.algorithm,
        folder.config.backbone,
        folder.config.num_classes,
        settings.port,
        settings.workers,
        f"{settings.gpus} GPU(s)" if settings.gpus else f"the CPU, {os.environ['OMP_NUM_THREADS']} thread(s) each",
    )
    _Server(folder, settings).run()


def load_app(folder: ModelFolder, settings: ServeSettings) -> App:
    """In a worker: the model on this worker's device, ready to answer."""
    import mxnet as mx

    from semseg.model import load_model
    from semseg.serving.predictor import Predictor

    device = os.environ.get(DEVICE_ENV, "cpu")
    ctx = mx.gpu(int(device.split(":")[1])) if device.startswith("gpu:") else mx.cpu()
    net = load_model(folder, [ctx])
    log.info("Worker %d: model loaded on %s", os.getpid(), ctx)
    return App(Predictor(net, ctx, folder.config.crop_size, settings.pixel_budget), settings.workers)


class _Server(BaseApplication):
    def __init__(self, folder: ModelFolder, settings: ServeSettings) -> None:
        self.folder = folder
        self.settings = settings
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
        return load_app(self.folder, self.settings)

    def _assign_device(self, server: Any, worker: Any) -> None:
        """In the parent, before a worker starts: the GPU no live worker holds (workers restart after faults)."""
        if not self.settings.gpus:
            worker.semseg_device = "cpu"
            return
        taken = {getattr(w, "semseg_device", None) for w in server.WORKERS.values()}
        free = [f"gpu:{i}" for i in range(self.settings.gpus) if f"gpu:{i}" not in taken]
        worker.semseg_device = free[0] if free else f"gpu:{worker.age % self.settings.gpus}"


def _take_device(server: Any, worker: Any) -> None:
    os.environ[DEVICE_ENV] = worker.semseg_device
