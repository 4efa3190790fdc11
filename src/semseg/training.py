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
from semseg.errors import AlgorithmError, Stopped
from semseg.fitting import Diverged, FitResult, TrainData, TrainLoop, fit
from semseg.hooks import JobHooks, JobState, epoch_seed
from semseg.job import Job
from semseg.options import RunOptions
from semseg.report import Reporter
from semseg.signals import StopFlag

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
    if options.engine == "torch":
        from semseg.torchengine.job import train_torch

        return train_torch(job, config, options, stop)
    return _train_mxnet(job, config, options, stop)


def _train_mxnet(job: Job, config: Config, options: RunOptions, stop: StopFlag) -> FitResult:
    import mxnet as mx
    from mxnet import gluon
    from mxnet.contrib import amp

    from semseg import artifacts, optim
    from semseg.data.labels import IGNORE
    from semseg.data.pipeline import build_loaders
    from semseg.devices import select_devices
    from semseg.engine import Loop
    from semseg.loss import SegmentationLoss
    from semseg.model import materialize
    from semseg.mxnet_state import MXNetState

    seed_everything(options.seed)
    mx.random.seed(options.seed)
    devices = select_devices(config, options)  # the GPU guard, before any data or model work
    train_loader, validation_loader = build_loaders(
        job, config, options.seed, options.workers_for(devices.gpu), pipe=options.pipe(stop)
    )
    log.info("LRScheduler setup: iters per epoch: %d, num_epochs %d", config.iterations_per_epoch, config.epochs)
    mixed_precision = config.precision_dtype == "float16"  # select_devices refused it without GPUs
    if mixed_precision:
        amp.init()  # must precede building the network
        log.info("Automatic mixed precision: float16 compute, float32 master weights, dynamic loss scaling")
    net = _mxnet_network(job, config, devices.contexts, options.weights_root)
    trainer = gluon.Trainer(net.collect_params(), config.optimizer, optim.optimizer_params(config), kvstore="device")
    if mixed_precision:
        amp.init_trainer(trainer)
    artifacts.write_hyperparams(config, job.paths.model_dir)
    state = MXNetState(net, trainer)
    start = resume(job, config, state, lambda: materialize(net, devices.contexts, config.crop_size))
    loss = SegmentationLoss(AUX_WEIGHT, IGNORE)
    loop = Loop(
        net, loss, trainer, devices.contexts, config.num_classes, config.crop_size, mixed_precision,
        options.pixel_budget,
    )  # fmt: skip
    result = run(job, config, options, stop, loop, state, start, (train_loader, validation_loader), mx.random.seed)
    artifacts.finish(config, net, job.paths.model_dir)
    return stopped_or(result, stop)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)


def resume(job: Job, config: Config, state: JobState, materialize: Callable[[], None]) -> Start:
    """Fresh early stopping at epoch 0, or the newest valid checkpoint of this engine loaded into `state`."""
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
        return Start(checkpoints, 0, early_stopping)
    if restored.best_params is not None:
        state.restore_best(restored.best_params, job.paths.model_dir)
    return Start(checkpoints, restored.next_epoch, restored.early_stopping)


def run(
    job: Job,
    config: Config,
    options: RunOptions,
    stop: StopFlag,
    loop: TrainLoop,
    state: JobState,
    start: Start,
    loaders: tuple[TrainData, Iterable[Any]],
    seed_engine: Callable[[int], None],
    *,
    report: bool = True,
) -> FitResult:
    """fit() with the job's hooks; a diverged loss becomes an AlgorithmError that says what to change."""
    model_dir = job.paths.model_dir
    reporter = Reporter(job.current_host, config.epochs, enabled=report)
    hooks = JobHooks(
        reporter,
        state,
        model_dir,
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
        kept = ", ".join(sorted(p.name for p in model_dir.iterdir()))
        raise AlgorithmError(
            f"{exc.message} Lower learning_rate (now {config.learning_rate:g}), e.g. to a tenth. "
            f"Kept in {model_dir}: {kept}."
        ) from exc
    if result.stopped_early:
        last = result.epochs_run + start.first_epoch - 1
        log.info("Early stopping after epoch %d: best mIOU %.6f at epoch %d", last, result.best_miou, result.best_epoch)
    return result


def stopped_or(result: FitResult, stop: StopFlag) -> FitResult:
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
