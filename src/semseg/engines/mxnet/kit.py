"""A training job on the MXNet engine: this host's devices (after the GPU guard), its part of the parameter
server when the job has several hosts, and the kit (GluonCV's network, Gluon's trainer, the loop, the state, the
DataLoader) that the one job assembly (semseg.fit.assembly) trains with.

Several hosts: each host is one part of the job (semseg.distributed.part) and trains on all of its devices in
one process. Its log lines are its own: each host writes its own loss and throughput, as the managed algorithm's
hosts do, to its own log stream. They are not agreed across hosts, and need not be: the servers sum every
host's gradients, so all hosts hold the same weights, and a loss that diverges (NaN or infinite gradients)
reaches every host's weights through that sum at the same update; each host then ends with the same
divergence error (the PyTorch engine reduces its loss over all processes, since DDP's processes log as one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import mxnet as mx
from mxnet.contrib import amp

from semseg.contract.config import Config
from semseg.contract.errors import ClientError, ExitAtOnce
from semseg.contract.job import Job
from semseg.contract.model_folder import ModelFolder
from semseg.contract.options import RunOptions
from semseg.contract.signals import StopFlag
from semseg.distributed.part import Part
from semseg.engines.mxnet.devices import Devices, device_memory, select_devices
from semseg.engines.mxnet.exchange import Exchange, broadcast_parameters
from semseg.engines.mxnet.loader import Loader
from semseg.engines.mxnet.loop import Loop
from semseg.engines.mxnet.network import build_model, load_model, materialize
from semseg.engines.mxnet.optim import trainer_for
from semseg.engines.mxnet.parameter_server import ParameterServer
from semseg.engines.mxnet.state import State
from semseg.fit.assembly import Trained, Trainee, train_part
from semseg.fit.loop import LoopSettings
from semseg.fit.memory import check_fits

log = logging.getLogger(__name__)


def train_job(job: Job, config: Config, options: RunOptions, stop: StopFlag) -> Trained:
    """The whole job on this host. With several hosts, a failure ends the process without freeing the kvstore
    (ExitAtOnce): freeing it waits for every other host's worker."""
    if config.vit:
        raise ClientError(
            f"backbone={config.backbone} (DINOv2) trains on the PyTorch engine only, and this job runs on MXNet: "
            "run it in the torch image (semseg:torch, whose engine is PyTorch), or set the environment variable "
            "SEMSEG_ENGINE=torch where PyTorch is installed; or choose backbone resnet-50 or resnet-101 here"
        )
    cluster = job.cluster
    devices = select_devices(config, options, cluster.batch_share(config.mini_batch_size))  # before any data work
    log.info("Engine: MXNet %s with GluonCV %s, on %s", mx.__version__, _gluoncv_version(), _names(devices.contexts))
    check_fits(config, device_memory(config, devices, cluster.size))
    if not cluster.distributed:
        return train_part(job, config, options, stop, Kit(config, options, devices), Part())
    server: ParameterServer | None = None
    try:
        server = ParameterServer(cluster, devices.gpu, options.ps_port, options.peer_timeout_s, job.paths.failure_file)
        exchange = Exchange(server)
        part = Part(cluster.rank, cluster.size, exchange=exchange)
        trained = train_part(job, config, options, stop, Kit(config, options, devices, exchange), part)
    except BaseException as exc:
        if server is not None:
            server.abandon()  # the ps-lite processes end now; the CLI ends this process without teardown
        raise ExitAtOnce(exc) from exc
    server.finish()
    return trained


class Kit:
    """The MXNet engine's parts of a job on `devices` (semseg.fit.assembly.Kit); `exchange`: the other hosts."""

    def __init__(self, config: Config, options: RunOptions, devices: Devices, exchange: Exchange | None = None):
        self.config, self.options, self.devices, self.exchange = config, options, devices, exchange
        self.loader = Loader(options.workers_for(devices.gpu))

    def seed(self, seed: int) -> None:
        mx.random.seed(seed)

    def fresh_network(self) -> Any:
        return build_model(self.config, self.devices.contexts, weights_root=self.options.weights_root)

    def seed_network(self, model: ModelFolder) -> Any:
        return load_model(model, self.devices.contexts, config=self.config, aux=True)

    def trainee(self, network: Callable[[], Any], settings: LoopSettings) -> Trainee:
        contexts, exchange = self.devices.contexts, self.exchange
        if settings.mixed_precision:  # select_devices refused it without GPUs
            amp.init()  # must precede building the network
            log.info("Automatic mixed precision: float16 compute, float32 master weights, dynamic loss scaling")
        net = network()
        trainer = trainer_for(net, self.config, exchange.server.kv if exchange else None)
        if exchange:  # every host joins the kvstore's parameter broadcast (from its rank 0) here, before any resume
            materialize(net, contexts, self.config.crop_size)
            broadcast_parameters(trainer)
        return Trainee(
            Loop(net, trainer, contexts, settings, exchange),
            State(net, trainer, self.config),
            lambda: materialize(net, contexts, self.config.crop_size),
        )


def _gluoncv_version() -> str:
    import gluoncv

    return str(gluoncv.__version__)


def _names(contexts: Sequence[Any]) -> str:
    return ", ".join(str(ctx) for ctx in contexts)
