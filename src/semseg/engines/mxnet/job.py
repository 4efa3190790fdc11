"""A training job on the MXNet engine: this host's devices (after the GPU guard), its part of the parameter
server when the job has several hosts, the GluonCV network, Gluon's trainer and the loop, handed to the shared
job steps (semseg.fit.job) as a Session.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import mxnet as mx
from mxnet.contrib import amp

from semseg.contract.config import Config
from semseg.contract.errors import ExitAtOnce
from semseg.contract.job import Job
from semseg.contract.options import RunOptions
from semseg.contract.seed_model import find_seed_model
from semseg.contract.signals import StopFlag
from semseg.data.pipeline import build_loaders
from semseg.distributed.stop import CollectiveStop, every_part
from semseg.engines.mxnet.devices import Devices, device_memory, select_devices
from semseg.engines.mxnet.exchange import Exchange, broadcast_parameters
from semseg.engines.mxnet.hosts import ParameterServer
from semseg.engines.mxnet.loader import mxnet_loader
from semseg.engines.mxnet.loop import Loop
from semseg.engines.mxnet.network import build_model, load_model, materialize
from semseg.engines.mxnet.optim import trainer_for
from semseg.engines.mxnet.state import State
from semseg.fit.class_weights import class_weights
from semseg.fit.job import Alone, Session, run_job, seed_everything
from semseg.fit.loop import FitResult, LoopSettings
from semseg.fit.memory import check_fits

log = logging.getLogger(__name__)


def train_job(job: Job, config: Config, options: RunOptions, stop: StopFlag) -> FitResult:
    """The whole job on this host. With several hosts, a failure ends the process without freeing the kvstore
    (ExitAtOnce): freeing it waits for every other host's worker."""
    share = job.cluster.batch_share(config.mini_batch_size)
    devices = select_devices(config, options, share)  # the GPU guard, before any data or model work
    log.info("Engine: MXNet %s with GluonCV %s, on %s", mx.__version__, _gluoncv_version(), _names(devices.contexts))
    check_fits(config, device_memory(config, devices, job.cluster.size))
    if not job.cluster.distributed:
        return _fit(job, config, options, stop, devices, None)
    server: ParameterServer | None = None
    try:
        server = ParameterServer(
            job.cluster, devices.gpu, options.ps_port, options.peer_timeout_s, job.paths.failure_file
        )
        result = _fit(job, config, options, stop, devices, Exchange(server))
    except BaseException as exc:
        if server is not None:
            server.abandon()  # the ps-lite processes end now; the CLI ends this process without teardown
        raise ExitAtOnce(exc) from exc
    server.finish()
    return result


def _fit(
    job: Job, config: Config, options: RunOptions, local_stop: StopFlag, devices: Devices, exchange: Exchange | None
) -> FitResult:
    cluster = job.cluster
    seed_everything(options.seed)
    mx.random.seed(options.seed)
    stop = CollectiveStop(local_stop, exchange.allreduce) if exchange else local_stop
    sum_counts = partial(exchange.sum_counts, "classes") if exchange else None
    weights = class_weights(job, config, options.seed, leader=cluster.leader, sum_counts=sum_counts)
    loaders = build_loaders(
        job, config, options.seed, options.workers_for(devices.gpu), mxnet_loader, pipe=options.pipe(local_stop),
        shard=(cluster.rank, cluster.size), agree_min=partial(exchange.agree_min, "batches") if exchange else None,
        all_have=every_part(exchange.allreduce, cluster.size) if exchange else None,
    )  # fmt: skip
    settings = LoopSettings.of(config, options.pixel_budget, weights)
    if settings.mixed_precision:  # select_devices refused it without GPUs
        amp.init()  # must precede building the network
        log.info("Automatic mixed precision: float16 compute, float32 master weights, dynamic loss scaling")
    net = _network(job, config, devices.contexts, options.weights_root)
    trainer = trainer_for(net, config, exchange.server.kv if exchange else None)
    if exchange:  # every host joins the kvstore's parameter broadcast (from its rank 0) here, before any resume
        materialize(net, devices.contexts, config.crop_size)
        broadcast_parameters(trainer)
    session = Session(
        Loop(net, trainer, devices.contexts, settings, exchange),
        State(net, trainer, config),
        loaders,
        mx.random.seed,
        materialize=lambda: materialize(net, devices.contexts, config.crop_size),
        exchange=exchange or Alone(),
        leader=cluster.leader,
    )
    return run_job(job, config, options, stop, session)


def _gluoncv_version() -> str:
    import gluoncv

    return str(gluoncv.__version__)


def _names(contexts: Sequence[Any]) -> str:
    return ", ".join(str(ctx) for ctx in contexts)


def _network(job: Job, config: Config, contexts: Sequence[Any], weights_root: Path) -> Any:
    """A fresh network (ImageNet backbone when asked), or the seed model of the `model` channel."""
    channel = job.channel("model")
    if channel is None:
        return build_model(config, contexts, weights_root=weights_root)
    with tempfile.TemporaryDirectory(prefix="semseg-seed-") as work:
        seed = find_seed_model(channel, Path(work), config)
        return load_model(seed, contexts, config=config, aux=True)
