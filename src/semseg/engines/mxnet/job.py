"""A training job on the MXNet engine: this host's devices (after the GPU guard), its part of the parameter
server when the job has several hosts, the GluonCV network, Gluon's trainer and the loop, handed to the shared
job steps (semseg.fit.job) as a Session.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.contrib import amp

from semseg.contract.config import Config
from semseg.contract.errors import ClientError, ExitAtOnce
from semseg.contract.job import Job
from semseg.contract.options import RunOptions
from semseg.contract.seed_model import find_seed_model
from semseg.contract.signals import StopFlag
from semseg.data.labels import IGNORE
from semseg.data.pipeline import build_loaders
from semseg.distributed.stop import CollectiveStop, every_part
from semseg.engines.mxnet import optim
from semseg.engines.mxnet.devices import Devices, device_memory, select_devices
from semseg.engines.mxnet.exchange import DistributedLoop, ParameterServer, broadcast_parameters
from semseg.engines.mxnet.loader import mxnet_loader
from semseg.engines.mxnet.loop import Loop
from semseg.engines.mxnet.loss import SegmentationLoss
from semseg.engines.mxnet.network import build_model, load_model, materialize
from semseg.engines.mxnet.state import MXNetState
from semseg.fit.class_weights import class_weights
from semseg.fit.job import Alone, Session, run_job, seed_everything
from semseg.fit.loop import AUX_WEIGHT, FitResult, TrainLoop
from semseg.fit.memory import check_fits

log = logging.getLogger(__name__)


def train_mxnet(job: Job, config: Config, options: RunOptions, stop: StopFlag) -> FitResult:
    """The whole job on this host. With several hosts, a failure ends the process without freeing the kvstore
    (ExitAtOnce): freeing it waits for every other host's worker."""
    devices = select_devices(config, options)  # the GPU guard, before any data or model work
    log.info("Engine: MXNet %s with GluonCV %s, on %s", mx.__version__, _gluoncv_version(), _names(devices.contexts))
    check_fits(config, device_memory(config, devices, job.cluster.size))
    if not job.cluster.distributed:
        return _fit(job, config, options, stop, devices, None)
    if config.mini_batch_size < job.cluster.size:
        raise ClientError(
            f"mini_batch_size={config.mini_batch_size} is the batch of all {job.cluster.size} hosts together; "
            "give it at least one image per host."
        )
    server: ParameterServer | None = None
    try:
        server = ParameterServer(
            job.cluster, devices.gpu, options.ps_port, options.peer_timeout_s, job.paths.failure_file
        )
        result = _fit(job, config, options, stop, devices, server)
    except BaseException as exc:
        if server is not None:
            server.abandon()  # the ps-lite processes end now; the CLI ends this process without teardown
        raise ExitAtOnce(exc) from exc
    server.finish()
    return result


def _fit(
    job: Job, config: Config, options: RunOptions, local_stop: StopFlag, devices: Devices, server: Any
) -> FitResult:
    cluster = job.cluster
    seed_everything(options.seed)
    mx.random.seed(options.seed)
    stop = CollectiveStop(local_stop, server.allreduce) if server else local_stop
    weights = class_weights(
        job,
        config,
        options.seed,
        leader=cluster.leader,
        sum_counts=server and (lambda n: server.sum_counts("classes", n)),
    )
    loaders = build_loaders(
        job, config, options.seed, options.workers_for(devices.gpu), mxnet_loader, pipe=options.pipe(local_stop),
        shard=(cluster.rank, cluster.size), agree_min=server and (lambda n: server.agree_min("batches", n)),
        all_have=server and every_part(server.allreduce, cluster.size),
    )  # fmt: skip
    mixed_precision = config.precision_dtype == "float16"  # select_devices refused it without GPUs
    if mixed_precision:
        amp.init()  # must precede building the network
        log.info("Automatic mixed precision: float16 compute, float32 master weights, dynamic loss scaling")
    net = _network(job, config, devices.contexts, options.weights_root)
    kvstore, on_servers = (server.kv, False) if server else ("device", None)
    trainer = gluon.Trainer(
        net.collect_params(), config.optimizer, optim.optimizer_params(config), kvstore=kvstore,
        update_on_kvstore=on_servers,
    )  # fmt: skip
    if mixed_precision:
        amp.init_trainer(trainer)
    if server:  # every host joins the kvstore's parameter broadcast (from its rank 0) here, before any resume
        materialize(net, devices.contexts, config.crop_size)
        broadcast_parameters(trainer)
    loop: TrainLoop = Loop(
        net, SegmentationLoss(AUX_WEIGHT, IGNORE), trainer, devices.contexts, config.num_classes, config.crop_size,
        mixed_precision, options.pixel_budget, global_batch=config.mini_batch_size if server else None,
        class_weights=weights, sum_hosts=server and (lambda v: float(server.allreduce("pixels", np.array([v]))[0])),
    )  # fmt: skip
    session = Session(
        DistributedLoop(loop, server) if server else loop,
        MXNetState(net, trainer, config),
        loaders,
        mx.random.seed,
        materialize=lambda: materialize(net, devices.contexts, config.crop_size),
        exchange=server or Alone(),
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
