"""One training job from start to artifacts: job + config -> devices -> data -> model -> loop -> artifacts.

The engine (SEMSEG_ENGINE: `mxnet`, the default, or `torch`) decides the framework-dependent half: the
network, the loop and its optimizer, their checkpoint files. Everything else is shared and here: the order
of the steps, early stopping and resume, the managed log lines (hooks), divergence and stop handling.
"""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semseg.checkpoint import CheckpointStore
from semseg.config import Config
from semseg.early_stopping import EarlyStopping
from semseg.errors import AlgorithmError, ClientError, Stopped
from semseg.fitting import Diverged, FitResult, TrainData, TrainLoop, fit
from semseg.hooks import JobHooks, JobState, epoch_seed
from semseg.job import Job
from semseg.options import RunOptions
from semseg.report import Reporter
from semseg.signals import StopFlag, StopSignal

log = logging.getLogger(__name__)

AUX_WEIGHT = 0.5  # the managed algorithm's (its log shows aux loss on, weight 0.5)


@dataclass(frozen=True)
class Start:
    """Where training starts: epoch 0 with fresh early stopping, or after a checkpoint's epoch."""

    checkpoints: CheckpointStore | None
    first_epoch: int
    early_stopping: EarlyStopping


def train(job: Job, config: Config, environ: Mapping[str, str], should_stop: StopFlag | None = None) -> FitResult:
    """Run the whole job on the engine the environment names; artifacts land in job.paths.model_dir."""
    options = RunOptions.from_environ(environ)
    stop = should_stop or StopFlag()
    if job.cluster.distributed:
        _check_several_hosts(job, options)
    if options.engine == "torch":
        from semseg.torchengine.job import train_torch

        return train_torch(job, config, options, stop)
    return _train_mxnet(job, config, options, stop)


def _check_several_hosts(job: Job, options: RunOptions) -> None:
    hosts = f"resourceconfig.json lists {job.cluster.size} hosts"
    if options.engine != "mxnet":
        raise ClientError(
            f"{hosts}; several hosts train on the MXNet engine (its parameter server), not SEMSEG_ENGINE="
            f"{options.engine}. Use one instance (all its GPUs train), or the MXNet engine."
        )
    if job.pipes:
        raise ClientError(
            f"{hosts}, and channel(s) {', '.join(sorted(job.pipes))} use Pipe mode: a stream's length is known only "
            "at its end, but the hosts must take the same steps. Use File (or FastFile) mode with several hosts."
        )


def _train_mxnet(job: Job, config: Config, options: RunOptions, stop: StopFlag) -> FitResult:
    devices_and_server = _start(job, config, options)
    server = devices_and_server[1]
    try:
        result = _fit_mxnet(job, config, options, stop, *devices_and_server)
    except BaseException:
        if server is not None:
            server.abandon()  # and cli.run ends the process without freeing the kvstore
        raise
    if server is not None:
        server.finish()
    return result


def _start(job: Job, config: Config, options: RunOptions) -> tuple[Any, Any]:
    """This host's devices (the GPU guard comes first), and its part of the parameter server when the job
    has several hosts."""
    from semseg.devices import select_devices

    devices = select_devices(config, options)
    if not job.cluster.distributed:
        return devices, None
    from semseg.parameter_server import ParameterServer

    if config.mini_batch_size < job.cluster.size:
        raise ClientError(
            f"mini_batch_size={config.mini_batch_size} is the batch of all {job.cluster.size} hosts together; "
            "give it at least one image per host."
        )
    server = ParameterServer(job.cluster, devices.gpu, options.ps_port, options.peer_timeout_s, job.paths.failure_file)
    return devices, server


def _fit_mxnet(
    job: Job, config: Config, options: RunOptions, local_stop: StopFlag, devices: Any, server: Any
) -> FitResult:
    import mxnet as mx
    from mxnet import gluon
    from mxnet.contrib import amp

    from semseg import artifacts, optim
    from semseg.data.labels import IGNORE
    from semseg.data.pipeline import build_loaders
    from semseg.engine import Loop
    from semseg.loss import SegmentationLoss
    from semseg.model import materialize
    from semseg.mxnet_state import MXNetState
    from semseg.parameter_server import CollectiveStop, DistributedLoop, broadcast_parameters

    cluster = job.cluster
    seed_everything(options.seed)
    mx.random.seed(options.seed)
    stop = CollectiveStop(local_stop, server) if server else local_stop
    train_loader, validation_loader = build_loaders(
        job, config, options.seed, options.workers_for(devices.gpu), pipe=options.pipe(local_stop),
        shard=(cluster.rank, cluster.size), agree_min=server and (lambda n: server.agree_min("batches", n)),
    )  # fmt: skip
    log.info("LRScheduler setup: iters per epoch: %d, num_epochs %d", config.iterations_per_epoch, config.epochs)
    mixed_precision = config.precision_dtype == "float16"  # select_devices refused it without GPUs
    if mixed_precision:
        amp.init()  # must precede building the network
        log.info("Automatic mixed precision: float16 compute, float32 master weights, dynamic loss scaling")
    net = _mxnet_network(job, config, devices.contexts, options.weights_root)
    kvstore, on_servers = (server.kv, False) if server else ("device", None)
    params = optim.optimizer_params(config)
    trainer = gluon.Trainer(
        net.collect_params(), config.optimizer, params, kvstore=kvstore, update_on_kvstore=on_servers
    )
    if mixed_precision:
        amp.init_trainer(trainer)
    if cluster.leader:
        artifacts.write_hyperparams(config, job.paths.model_dir)
    state = MXNetState(net, trainer)
    if server:  # every host joins the kvstore's parameter broadcast (from its rank 0) here, before any resume
        materialize(net, devices.contexts, config.crop_size)
        broadcast_parameters(trainer)
    start = resume(job, config, state, lambda: materialize(net, devices.contexts, config.crop_size), cluster.leader)
    if server:
        server.check_same("resume", start.first_epoch, "the epoch to resume from (checkpoints must be shared)")
    loss = SegmentationLoss(AUX_WEIGHT, IGNORE)
    loop: TrainLoop = Loop(
        net, loss, trainer, devices.contexts, config.num_classes, config.crop_size, mixed_precision,
        options.pixel_budget, global_batch=config.mini_batch_size if server else None,
    )  # fmt: skip
    if server:
        loop = DistributedLoop(loop, server)
    loaders = (train_loader, validation_loader)
    result = run(job, config, options, stop, loop, state, start, loaders, mx.random.seed, leader=cluster.leader)
    if server and result.interrupted:
        server.drain()  # stopping: the other hosts end after this, maybe before this one wrote its artifacts
    if cluster.leader:
        artifacts.finish(config, net, job.paths.model_dir)
    return stopped_or(result, stop)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)


def resume(job: Job, config: Config, state: JobState, materialize: Callable[[], None], leader: bool = True) -> Start:
    """Fresh early stopping at epoch 0, or the newest valid checkpoint of this engine loaded into `state`;
    only the `leader` (the first host) writes (the resumed best weights) and later checkpoints."""
    early_stopping = EarlyStopping(
        config.early_stopping,
        config.early_stopping_min_epochs,
        config.early_stopping_patience,
        config.early_stopping_tolerance,
    )
    if job.checkpoint_dir is None:
        return Start(None, 0, early_stopping)
    checkpoints = CheckpointStore(job.checkpoint_dir, config.to_hyperparameters())
    materialize()
    restored = checkpoints.restore(state)
    if restored is None:
        return Start(checkpoints if leader else None, 0, early_stopping)
    if restored.best_params is not None and leader:
        state.restore_best(restored.best_params, job.paths.model_dir)
    return Start(checkpoints if leader else None, restored.next_epoch, restored.early_stopping)


def run(
    job: Job,
    config: Config,
    options: RunOptions,
    stop: StopSignal,
    loop: TrainLoop,
    state: JobState,
    start: Start,
    loaders: tuple[TrainData, Iterable[Any]],
    seed_engine: Callable[[int], None],
    *,
    report: bool = True,
    leader: bool = True,
) -> FitResult:
    """fit() with the job's hooks; a diverged loss becomes an AlgorithmError that says what to change."""
    model_dir = job.paths.model_dir
    reporter = Reporter(job.current_host, config.epochs, enabled=report)
    hooks = JobHooks(
        reporter,
        state,
        model_dir if leader else None,
        lambda epoch: seed_engine(epoch_seed(options.seed, epoch)),
        start.checkpoints if report else None,
        start.early_stopping,
    )
    log.info("Training starts at epoch %d of %d", start.first_epoch, config.epochs)
    try:
        result = fit(
            loop,
            loaders[0],
            loaders[1],
            epochs=config.epochs,
            whole_image_validation=config.whole_image_validation,
            early_stopping=start.early_stopping,
            hooks=hooks,
            progress_every=options.progress_every,
            first_epoch=start.first_epoch,
            should_stop=stop,
        )
    except Diverged as exc:
        kept = ", ".join(sorted(p.name for p in model_dir.iterdir())) if model_dir.is_dir() else "nothing"
        raise AlgorithmError(
            f"{exc.message} Lower learning_rate (now {config.learning_rate:g}), e.g. to a tenth. "
            f"Kept in {model_dir}: {kept}."
        ) from exc
    if result.stopped_early:
        last = result.epochs_run + start.first_epoch - 1
        log.info("Early stopping after epoch %d: best mIOU %.6f at epoch %d", last, result.best_miou, result.best_epoch)
    return result


def stopped_or(result: FitResult, stop: StopSignal) -> FitResult:
    """The result, or Stopped when a signal ended training (after the artifacts were written)."""
    if result.interrupted and stop.signum is not None:
        raise Stopped(stop.signum)
    return result


def _mxnet_network(job: Job, config: Config, contexts: Sequence[Any], weights_root: Path) -> Any:
    """A fresh network (ImageNet backbone when asked), or the seed model of the `model` channel."""
    from semseg.model import build_model, load_model
    from semseg.seed_model import find_seed_model

    channel = job.channel("model")
    if channel is None:
        return build_model(config, contexts, weights_root=weights_root)
    with tempfile.TemporaryDirectory(prefix="semseg-seed-") as work:
        seed = find_seed_model(channel, Path(work), config)
        return load_model(seed, contexts, config=config, aux=True)
