"""Channels -> batches: the one place that turns a job's train and validation data into loaders.

Each split is File mode (image and mask folders, semseg.data.channels) or Pipe mode (an augmented manifest
streamed per epoch, semseg.data.stream); either mix works. Training batches are shuffled, augmented and
re-seeded per epoch; validation batches are centre crops, or whole images when
`Config.whole_image_validation`. Batches are uint8 (normalised on the device).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from semseg.config import Config
from semseg.data import transforms
from semseg.data.channels import find_pairs
from semseg.data.dataset import BatchSampler, EpochLoader, SeededBatchSampler, SegmentationDataset
from semseg.data.labels import LabelMap, load_label_map
from semseg.data.loaders import mxnet_loader
from semseg.data.stream import PipeBatches, PipeSettings, StreamDataset
from semseg.errors import ClientError
from semseg.job import Job

log = logging.getLogger(__name__)


MakeLoader = Callable[[Any, Any, int], Any]  # (data set, batch sampler, workers) -> the engine's DataLoader


def build_loaders(
    job: Job,
    config: Config,
    seed: int,
    workers: int,
    make_loader: MakeLoader = mxnet_loader,
    shard: tuple[int, int] = (0, 1),
    pipe: PipeSettings | None = None,
) -> tuple[EpochLoader, EpochLoader]:
    """(train, validation) loaders of the job's channels, each File or Pipe mode, made by the engine's
    `make_loader`; `shard` = (rank, processes) gives one process of a multi-GPU job its share of every
    batch (File mode only: a FIFO has one reader)."""
    label_channel = job.channel("label_map")
    pipe = pipe or PipeSettings()
    if job.pipes and shard[1] > 1:
        raise ValueError("a Pipe-mode channel is read by one process")  # the engines plan for this
    validation_transform = (
        transforms.whole_image if config.whole_image_validation else transforms.center_crop(config.crop_size)
    )
    splits = (
        ("train", _train_transform(config), config.mini_batch_size, True),
        ("validation", validation_transform, config.validation_mini_batch_size, False),
    )
    loaders = []
    for split, transform, batch_size, training in splits:
        label_map = load_label_map(label_channel, split, config.num_classes)
        if split in job.pipes:
            dataset: Any = StreamDataset(label_map, transform)
            sampler: BatchSampler = PipeBatches(
                job.paths.data_dir, split, batch_size, shuffle=training, drop_last=training, seed=seed,
                settings=pipe, expected=config.num_training_samples if training else None,
            )  # fmt: skip
        else:
            dataset = _file_dataset(job, split, label_map, transform)
            if training:
                _check_train_size(config, len(dataset))
            sampler = SeededBatchSampler(
                len(dataset), batch_size, shuffle=training, drop_last=training, seed=seed, shard=shard
            )
        loaders.append(EpochLoader(make_loader(dataset, sampler, workers), sampler))
    log.info("Data loading: %d worker process(es)", workers)
    return loaders[0], loaders[1]


def _check_train_size(config: Config, pairs: int) -> None:
    if pairs < config.mini_batch_size:
        raise ClientError(
            f"Channel 'train' has {pairs} usable pairs, fewer than mini_batch_size="
            f"{config.mini_batch_size}. Add images or lower mini_batch_size."
        )
    if config.num_training_samples != pairs:
        log.warning(
            "num_training_samples=%d but channel 'train' has %d usable pairs; the learning-rate schedule "
            "follows num_training_samples",
            config.num_training_samples,
            pairs,
        )


def _train_transform(config: Config) -> transforms.Transform:
    if config.base_size:
        return transforms.gluoncv_train(config.crop_size, config.base_size)
    return transforms.seed_train(config.crop_size)


def _file_dataset(job: Job, split: str, label_map: LabelMap, transform: transforms.Transform) -> SegmentationDataset:
    pairs = find_pairs(job.required_channel(split), job.required_channel(f"{split}_annotation"))
    return SegmentationDataset(pairs, label_map, transform)
