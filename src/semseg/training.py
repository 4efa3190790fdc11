"""One training job from start to artifacts: job + config -> data -> model -> loop -> report/artifacts."""

from __future__ import annotations

import logging
import os
import random
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon
from mxnet.contrib import amp

from semseg import artifacts, optim
from semseg.checkpoint import CheckpointStore
from semseg.config import Config
from semseg.data import transforms
from semseg.data.channels import find_pairs
from semseg.data.dataset import EpochLoader, SeededBatchSampler, SegmentationDataset, make_loader
from semseg.data.labels import IGNORE, load_label_map
from semseg.devices import training_contexts
from semseg.engine import Diverged, EarlyStopping, EpochResult, FitResult, Loop, fit
from semseg.errors import AlgorithmError, ClientError, Stopped
from semseg.job import Job
from semseg.loss import SegmentationLoss
from semseg.model import build_model, load_weights, materialize
from semseg.report import Reporter
from semseg.seed_model import SeedModel, find_seed_model
from semseg.signals import StopFlag

log = logging.getLogger(__name__)

AUX_WEIGHT = 0.5  # the managed algorithm's (its log shows aux loss on, weight 0.5)
MAX_DATA_WORKERS = 16  # the managed algorithm's


@dataclass(frozen=True)
class RunOptions:
    """Settings that are not hyperparameters: from the environment, with documented defaults."""

    weights_root: Path  # GluonCV's weight store: $MXNET_HOME/models, else ~/.mxnet/models
    seed: int = 0
    data_workers: int | None = None  # None: 0 on the CPU, else min(16, CPU cores)
    progress_every: int = 20

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RunOptions:
        home = environ.get("MXNET_HOME") or "~/.mxnet"
        workers = environ.get("SEMSEG_DATA_WORKERS")
        return cls(
            seed=_env_int(environ, "SEMSEG_SEED", 0),
            data_workers=None if workers is None else _env_int(environ, "SEMSEG_DATA_WORKERS", 0),
            weights_root=Path(home).expanduser() / "models",
            progress_every=max(1, _env_int(environ, "SEMSEG_PROGRESS_EVERY", 20)),
        )

    def workers_for(self, contexts: list[mx.Context]) -> int:
        if self.data_workers is not None:
            return max(0, self.data_workers)
        if contexts[0].device_type == "cpu":
            return 0  # on the CPU the network needs every core; loading inline measured faster here
        return min(MAX_DATA_WORKERS, os.cpu_count() or 1)


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ClientError(f"Environment variable {name}={raw!r} must be an integer") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    mx.random.seed(seed)


class JobHooks:
    """Per-epoch seeding, the managed log lines, model_best.params whenever mIOU improves, checkpoints."""

    def __init__(
        self,
        reporter: Reporter,
        loop: Loop,
        model_dir: Path,
        seed: int,
        checkpoints: CheckpointStore | None,
        early_stopping: EarlyStopping,
    ) -> None:
        self.reporter = reporter
        self.loop = loop
        self.model_dir = model_dir
        self.seed = seed
        self.checkpoints = checkpoints
        self.early_stopping = early_stopping

    def epoch_start(self, epoch: int) -> None:
        # Dropout draws from MXNet's generator: a seed per epoch makes a resumed run repeat the original.
        mx.random.seed(self.seed * 100_003 + epoch)

    def progress(self, epoch: int, iterations: int, samples_per_sec: float, learning_rate: float) -> None:
        self.reporter.progress(epoch, iterations, samples_per_sec, learning_rate)

    def epoch_end(self, result: EpochResult, is_best: bool) -> None:
        self.reporter.epoch_end(result.epoch, result.train_loss, result.throughput, result.pixel_accuracy, result.miou)
        if is_best:
            artifacts.save_params(self.loop.net, self.model_dir / artifacts.BEST_PARAMS)
            log.info("Epoch %d: best validation mIOU so far, saved %s", result.epoch, artifacts.BEST_PARAMS)
        if self.checkpoints is not None:
            self.checkpoints.save(result.epoch, self.loop.net, self.loop.trainer, self.early_stopping, is_best)


def train(job: Job, config: Config, environ: Mapping[str, str], should_stop: StopFlag | None = None) -> FitResult:
    """Run the whole job; artifacts land in job.paths.model_dir."""
    stop = should_stop or StopFlag()
    options = RunOptions.from_environ(environ)
    seed_everything(options.seed)
    contexts = training_contexts(config.mini_batch_size)
    train_loader, validation_loader = _loaders(job, config, options, contexts)
    iters = optim.iterations_per_epoch(config)
    log.info("LRScheduler setup: iters per epoch: %d, num_epochs %d", iters, config.epochs)

    mixed_precision = _mixed_precision(config, contexts)
    seed = _seed_model(job, config)
    pretrained = config.use_pretrained_model and seed is None
    net = build_model(replace(config, use_pretrained_model=pretrained), contexts, weights_root=options.weights_root)
    if seed is not None:
        load_weights(net, seed.weights, contexts, "the seed model in channel 'model'")
    trainer = gluon.Trainer(
        net.collect_params(), config.optimizer, optim.optimizer_params(config, iters), kvstore="device"
    )
    if mixed_precision:
        amp.init_trainer(trainer)
    model_dir = job.paths.model_dir
    artifacts.write_hyperparams(config, model_dir)
    early_stopping = EarlyStopping(
        config.early_stopping,
        config.early_stopping_min_epochs,
        config.early_stopping_patience,
        config.early_stopping_tolerance,
    )
    checkpoints = None
    first_epoch = 0
    if job.checkpoint_dir is not None:
        checkpoints = CheckpointStore(job.checkpoint_dir, config.to_hyperparameters())
        materialize(net, contexts, config.crop_size)
        resume = checkpoints.restore(net, trainer)
        if resume is not None:
            first_epoch, early_stopping = resume.next_epoch, resume.early_stopping
            if resume.best_params is not None:
                artifacts.copy_file(resume.best_params, model_dir / artifacts.BEST_PARAMS)
    loop = Loop(
        net,
        SegmentationLoss(AUX_WEIGHT, IGNORE),
        trainer,
        contexts,
        config.num_classes,
        config.crop_size,
        mixed_precision,
    )
    hooks = JobHooks(
        Reporter(job.current_host, config.epochs), loop, model_dir, options.seed, checkpoints, early_stopping
    )
    log.info("Training starts at epoch %d of %d", first_epoch, config.epochs)
    try:
        result = fit(
            loop,
            train_loader,
            validation_loader,
            epochs=config.epochs,
            whole_image_validation=config.validation_mini_batch_size == 1,
            early_stopping=early_stopping,
            hooks=hooks,
            progress_every=options.progress_every,
            first_epoch=first_epoch,
            should_stop=stop,
        )
    except Diverged as exc:
        kept = ", ".join(sorted(p.name for p in model_dir.iterdir()))
        raise AlgorithmError(
            f"{exc.message} Lower learning_rate (now {config.learning_rate:g}), e.g. to a tenth. "
            f"Kept in {model_dir}: {kept}."
        ) from exc
    if result.stopped_early:
        log.info(
            "Early stopping after epoch %d: best mIOU %.6f at epoch %d",
            result.epochs_run + first_epoch - 1,
            result.best_miou,
            result.best_epoch,
        )
    _finish(config, net, model_dir)
    if result.interrupted and stop.signum is not None:
        raise Stopped(stop.signum)
    return result


def _finish(config: Config, net: gluon.HybridBlock, model_dir: Path) -> None:
    """The artifacts of the end of training (also after a stop request)."""
    artifacts.save_params(net, model_dir / artifacts.FINAL_PARAMS)
    best = model_dir / artifacts.BEST_PARAMS
    if not best.exists():  # stopped before the first validation: the weights reached so far
        artifacts.copy_file(model_dir / artifacts.FINAL_PARAMS, best)
    artifacts.export_symbol(
        lambda: build_model(_without_pretrained(config), [mx.cpu()], aux=False), best, model_dir, config.crop_size
    )
    log.info("Artifacts in %s: %s", model_dir, ", ".join(sorted(p.name for p in model_dir.iterdir())))


def _mixed_precision(config: Config, contexts: list[mx.Context]) -> bool:
    """precision_dtype=float16: MXNet AMP (float16 compute, float32 master weights) on GPUs."""
    if config.precision_dtype != "float16":
        return False
    if contexts[0].device_type != "gpu":
        log.warning("precision_dtype=float16 needs GPUs; training in float32 on the CPU")
        return False
    amp.init()  # must precede building the network
    log.info("Automatic mixed precision: float16 compute, float32 master weights, dynamic loss scaling")
    return True


def _seed_model(job: Job, config: Config) -> SeedModel | None:
    channel = job.channel("model")
    if channel is None:
        return None
    return find_seed_model(channel, Path(tempfile.mkdtemp(prefix="semseg-seed-")), config)


def _without_pretrained(config: Config) -> Config:
    return replace(config, use_pretrained_model=False, syncbn=False)


def _loaders(
    job: Job, config: Config, options: RunOptions, contexts: list[mx.Context]
) -> tuple[EpochLoader, EpochLoader]:
    label_channel = job.channel("label_map")
    train_pairs = find_pairs(job.required_channel("train"), job.required_channel("train_annotation"))
    validation_pairs = find_pairs(job.required_channel("validation"), job.required_channel("validation_annotation"))
    if len(train_pairs) < config.mini_batch_size:
        raise ClientError(
            f"Channel 'train' has {len(train_pairs)} usable pairs, fewer than mini_batch_size="
            f"{config.mini_batch_size}. Add images or lower mini_batch_size."
        )
    if config.num_training_samples < config.mini_batch_size:
        raise ClientError(
            f"num_training_samples={config.num_training_samples} is smaller than mini_batch_size="
            f"{config.mini_batch_size}, so an epoch would have no iterations. Set num_training_samples to the "
            f"number of training images ({len(train_pairs)})."
        )
    if config.num_training_samples != len(train_pairs):
        log.warning(
            "num_training_samples=%d but channel 'train' has %d usable pairs; the learning-rate schedule "
            "follows num_training_samples",
            config.num_training_samples,
            len(train_pairs),
        )
    if config.base_size:
        train_transform = transforms.gluoncv_train(config.crop_size, config.base_size)
    else:
        train_transform = transforms.seed_train(config.crop_size)
    whole = config.validation_mini_batch_size == 1
    validation_transform = transforms.whole_image if whole else transforms.center_crop(config.crop_size)
    workers = options.workers_for(contexts)
    train_set = SegmentationDataset(
        train_pairs, load_label_map(label_channel, "train", config.num_classes), train_transform
    )
    validation_set = SegmentationDataset(
        validation_pairs, load_label_map(label_channel, "validation", config.num_classes), validation_transform
    )
    train_sampler = SeededBatchSampler(
        len(train_set), config.mini_batch_size, shuffle=True, drop_last=True, seed=options.seed
    )
    validation_sampler = SeededBatchSampler(
        len(validation_set), config.validation_mini_batch_size, shuffle=False, drop_last=False, seed=options.seed
    )
    log.info("Data loading: %d worker process(es)", workers)
    return (
        EpochLoader(make_loader(train_set, train_sampler, workers), train_sampler),
        EpochLoader(make_loader(validation_set, validation_sampler, workers), validation_sampler),
    )
