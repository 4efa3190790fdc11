"""One training job from start to artifacts: job + config -> devices -> data -> model -> loop -> artifacts."""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.contrib import amp

from semseg import artifacts, optim
from semseg.checkpoint import CheckpointStore
from semseg.config import Config
from semseg.data.labels import IGNORE
from semseg.data.pipeline import build_loaders
from semseg.devices import select_devices
from semseg.early_stopping import EarlyStopping
from semseg.engine import Diverged, FitResult, Loop, fit
from semseg.errors import AlgorithmError, Stopped
from semseg.files import BEST_PARAMS, copy_file
from semseg.hooks import JobHooks
from semseg.job import Job
from semseg.loss import SegmentationLoss
from semseg.model import build_model, load_model, materialize
from semseg.options import RunOptions
from semseg.report import Reporter
from semseg.seed_model import find_seed_model
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
    """Run the whole job; artifacts land in job.paths.model_dir."""
    stop = should_stop or StopFlag()
    options = RunOptions.from_environ(environ)
    seed_everything(options.seed)
    devices = select_devices(config, options)  # the GPU guard, before any data or model work
    train_loader, validation_loader = build_loaders(job, config, options.seed, options.workers_for(devices.gpu))
    log.info("LRScheduler setup: iters per epoch: %d, num_epochs %d", config.iterations_per_epoch, config.epochs)
    mixed_precision = config.precision_dtype == "float16"  # select_devices refused it without GPUs
    if mixed_precision:
        amp.init()  # must precede building the network
        log.info("Automatic mixed precision: float16 compute, float32 master weights, dynamic loss scaling")
    net = _network(job, config, devices.contexts, options.weights_root)
    trainer = gluon.Trainer(net.collect_params(), config.optimizer, optim.optimizer_params(config), kvstore="device")
    if mixed_precision:
        amp.init_trainer(trainer)
    model_dir = job.paths.model_dir
    artifacts.write_hyperparams(config, model_dir)
    start = _start(job, config, net, trainer, devices.contexts)
    loss = SegmentationLoss(AUX_WEIGHT, IGNORE)
    loop = Loop(net, loss, trainer, devices.contexts, config.num_classes, config.crop_size, mixed_precision)
    reporter = Reporter(job.current_host, config.epochs)
    hooks = JobHooks(reporter, loop, model_dir, options.seed, start.checkpoints, start.early_stopping)
    log.info("Training starts at epoch %d of %d", start.first_epoch, config.epochs)
    try:
        result = fit(
            loop,
            train_loader,
            validation_loader,
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
    artifacts.finish(config, net, model_dir)
    if result.interrupted and stop.signum is not None:
        raise Stopped(stop.signum)
    return result


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


def _network(job: Job, config: Config, contexts: Sequence[mx.Context], weights_root: Path) -> gluon.HybridBlock:
    """A fresh network (ImageNet backbone when asked), or the seed model of the `model` channel."""
    channel = job.channel("model")
    if channel is None:
        return build_model(config, contexts, weights_root=weights_root)
    with tempfile.TemporaryDirectory(prefix="semseg-seed-") as work:
        seed = find_seed_model(channel, Path(work), config)
        return load_model(seed, contexts, config=config, aux=True)


def _start(
    job: Job, config: Config, net: gluon.HybridBlock, trainer: gluon.Trainer, contexts: Sequence[mx.Context]
) -> Start:
    early_stopping = EarlyStopping(
        config.early_stopping,
        config.early_stopping_min_epochs,
        config.early_stopping_patience,
        config.early_stopping_tolerance,
    )
    if job.checkpoint_dir is None:
        return Start(None, 0, early_stopping)
    checkpoints = CheckpointStore(job.checkpoint_dir, config.to_hyperparameters())
    materialize(net, contexts, config.crop_size)
    resume = checkpoints.restore(net, trainer)
    if resume is None:
        return Start(checkpoints, 0, early_stopping)
    if resume.best_params is not None:
        copy_file(resume.best_params, job.paths.model_dir / BEST_PARAMS)
    return Start(checkpoints, resume.next_epoch, resume.early_stopping)
