"""One training job from start to artifacts: job + config -> data -> model -> loop -> report/artifacts."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon

from semseg import artifacts, optim
from semseg.config import Config
from semseg.data import transforms
from semseg.data.channels import find_pairs
from semseg.data.dataset import EpochLoader, SeededBatchSampler, SegmentationDataset, make_loader
from semseg.data.labels import IGNORE, load_label_map
from semseg.devices import training_contexts
from semseg.engine import EarlyStopping, EpochResult, FitResult, Loop, fit
from semseg.errors import ClientError
from semseg.job import Job
from semseg.loss import SegmentationLoss
from semseg.model import build_model
from semseg.report import Reporter

log = logging.getLogger(__name__)

AUX_WEIGHT = 0.5  # the managed algorithm's (its log shows aux loss on, weight 0.5)
MAX_DATA_WORKERS = 16  # the managed algorithm's


@dataclass(frozen=True)
class RunOptions:
    """Settings that are not hyperparameters: from the environment, with documented defaults."""

    seed: int = 0
    data_workers: int | None = None  # None: 0 on the CPU, else min(16, CPU cores)
    weights_root: Path = Path("/root/.mxnet/models")  # from_environ resolves $MXNET_HOME or ~/.mxnet
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
    """Reports the managed log lines and saves model_best.params whenever mIOU improves."""

    def __init__(self, reporter: Reporter, net: gluon.HybridBlock, model_dir: Path) -> None:
        self.reporter = reporter
        self.net = net
        self.model_dir = model_dir

    def progress(self, epoch: int, iterations: int, samples_per_sec: float, learning_rate: float) -> None:
        self.reporter.progress(epoch, iterations, samples_per_sec, learning_rate)

    def epoch_end(self, result: EpochResult, is_best: bool) -> None:
        if not np.isfinite(result.train_loss):
            log.warning("Epoch %d: train loss is %s", result.epoch, result.train_loss)
        self.reporter.epoch_end(result.epoch, result.train_loss, result.throughput, result.pixel_accuracy, result.miou)
        if is_best:
            artifacts.save_params(self.net, self.model_dir / artifacts.BEST_PARAMS)
            log.info("Epoch %d: best validation mIOU so far, saved %s", result.epoch, artifacts.BEST_PARAMS)


def train(job: Job, config: Config, environ: Mapping[str, str]) -> FitResult:
    """Run the whole job; artifacts land in job.paths.model_dir."""
    options = RunOptions.from_environ(environ)
    seed_everything(options.seed)
    contexts = training_contexts(config.mini_batch_size)
    train_loader, validation_loader = _loaders(job, config, options, contexts)
    iters = optim.iterations_per_epoch(config)
    log.info("LRScheduler setup: iters per epoch: %d, num_epochs %d", iters, config.epochs)

    net = build_model(config, contexts, weights_root=options.weights_root)
    trainer = gluon.Trainer(
        net.collect_params(), config.optimizer, optim.optimizer_params(config, iters), kvstore="device"
    )
    loss = SegmentationLoss(AUX_WEIGHT, IGNORE)
    loop = Loop(net, loss, trainer, contexts, config.num_classes, config.crop_size)

    model_dir = job.paths.model_dir
    artifacts.write_hyperparams(config, model_dir)
    result = fit(
        loop,
        train_loader,
        validation_loader,
        epochs=config.epochs,
        whole_image_validation=config.validation_mini_batch_size == 1,
        early_stopping=EarlyStopping(
            config.early_stopping,
            config.early_stopping_min_epochs,
            config.early_stopping_patience,
            config.early_stopping_tolerance,
        ),
        hooks=JobHooks(Reporter(job.current_host, config.epochs), net, model_dir),
        progress_every=options.progress_every,
    )
    if result.stopped_early:
        log.info(
            "Early stopping after epoch %d: best mIOU %.6f at epoch %d",
            result.epochs_run - 1,
            result.best_miou,
            result.best_epoch,
        )
    artifacts.save_params(net, model_dir / artifacts.FINAL_PARAMS)
    artifacts.export_symbol(
        lambda: build_model(_without_pretrained(config), [mx.cpu()], aux=False),
        model_dir / artifacts.BEST_PARAMS,
        model_dir,
        config.crop_size,
    )
    log.info("Artifacts in %s: %s", model_dir, ", ".join(sorted(p.name for p in model_dir.iterdir())))
    return result


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
