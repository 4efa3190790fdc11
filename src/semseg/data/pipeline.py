"""Channels -> batches: the one place that turns a job's train and validation data into loaders.

Training batches are shuffled, augmented and re-seeded per epoch; validation batches are centre crops,
or whole images when `Config.whole_image_validation`. Batches are uint8 (normalised on the device).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from semseg.config import Config
from semseg.data import transforms
from semseg.data.channels import find_pairs
from semseg.data.dataset import EpochLoader, SeededBatchSampler, SegmentationDataset
from semseg.data.labels import load_label_map
from semseg.data.loaders import mxnet_loader
from semseg.errors import ClientError
from semseg.job import Job

log = logging.getLogger(__name__)


MakeLoader = Callable[[SegmentationDataset, SeededBatchSampler, int], Any]


def build_loaders(
    job: Job,
    config: Config,
    seed: int,
    workers: int,
    make_loader: MakeLoader = mxnet_loader,
    shard: tuple[int, int] = (0, 1),
) -> tuple[EpochLoader, EpochLoader]:
    """(train, validation) loaders of the job's File-mode channels, made by the engine's `make_loader`;
    `shard` = (rank, processes) gives one process of a multi-GPU job its share of every batch."""
    label_channel = job.channel("label_map")
    train_set = _dataset(job, "train", config, label_channel, _train_transform(config))
    if len(train_set) < config.mini_batch_size:
        raise ClientError(
            f"Channel 'train' has {len(train_set)} usable pairs, fewer than mini_batch_size="
            f"{config.mini_batch_size}. Add images or lower mini_batch_size."
        )
    if config.num_training_samples != len(train_set):
        log.warning(
            "num_training_samples=%d but channel 'train' has %d usable pairs; the learning-rate schedule "
            "follows num_training_samples",
            config.num_training_samples,
            len(train_set),
        )
    validation_transform = (
        transforms.whole_image if config.whole_image_validation else transforms.center_crop(config.crop_size)
    )
    validation_set = _dataset(job, "validation", config, label_channel, validation_transform)
    train_sampler = SeededBatchSampler(
        len(train_set), config.mini_batch_size, shuffle=True, drop_last=True, seed=seed, shard=shard
    )
    validation_sampler = SeededBatchSampler(
        len(validation_set), config.validation_mini_batch_size, shuffle=False, drop_last=False, seed=seed, shard=shard
    )
    log.info("Data loading: %d worker process(es)", workers)
    return (
        EpochLoader(make_loader(train_set, train_sampler, workers), train_sampler),
        EpochLoader(make_loader(validation_set, validation_sampler, workers), validation_sampler),
    )


def _train_transform(config: Config) -> transforms.Transform:
    if config.base_size:
        return transforms.gluoncv_train(config.crop_size, config.base_size)
    return transforms.seed_train(config.crop_size)


def _dataset(
    job: Job, split: str, config: Config, label_channel: Path | None, transform: transforms.Transform
) -> SegmentationDataset:
    pairs = find_pairs(job.required_channel(split), job.required_channel(f"{split}_annotation"))
    return SegmentationDataset(pairs, load_label_map(label_channel, split, config.num_classes), transform)
