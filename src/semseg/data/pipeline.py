"""Channels -> batches: the one place that turns a job's train and validation data into loaders.

Each split is File mode (image and mask folders, semseg.data.channels) or Pipe mode (an augmented manifest
streamed per epoch, semseg.data.stream); either mix works. Training batches are shuffled, augmented and
re-seeded per epoch; validation batches are centre crops, or whole images when
`Config.whole_image_validation`. Batches are uint8 (normalised on the device).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.job import Job
from semseg.contract.options import PipeSettings
from semseg.data import transforms
from semseg.data.channels import Pair, find_pairs
from semseg.data.dataset import SegmentationDataset
from semseg.data.joint_epochs import AgreedBatches
from semseg.data.labels import load_label_map
from semseg.data.samplers import BatchSampler, EpochLoader, SeededBatchSampler
from semseg.data.shared_fifo import FedBatches, Scatter
from semseg.data.stream import PipeBatches, StreamDataset
from semseg.distributed.part import Part
from semseg.distributed.stop import every_part

log = logging.getLogger(__name__)


SPLITS = ("train", "validation")
Listed = Mapping[str, list[Pair]]  # split -> its pairs (File-mode splits)
ALONE = Part()


class Loader(Protocol):
    """An engine's DataLoader maker and the data worker processes of its part."""

    @property
    def workers(self) -> int: ...

    def make(self, dataset: Any, sampler: Any, workers: int) -> Any:
        """The engine's DataLoader over `dataset` with `sampler`'s batches and `workers` processes."""


def list_channels(job: Job) -> Listed:
    """The pairs of every File-mode split (train and validation), listed and checked once for the whole job: its
    loaders, the class counts and the export read this listing."""
    return {
        split: find_pairs(job.required_channel(split), job.required_channel(f"{split}_annotation"))
        for split in SPLITS
        if split not in job.pipes
    }


def build_loaders(
    job: Job,
    config: Config,
    seed: int,
    loader: Loader,
    part: Part = ALONE,
    listed: Listed | None = None,
    pipe: PipeSettings | None = None,
) -> tuple[EpochLoader | AgreedBatches, EpochLoader]:
    """(train, validation) loaders of the job's channels, each File mode (the pairs `listed`) or Pipe mode, made by
    the engine's `loader`.

    `part`: this process's part of a job of several processes (GPUs) or hosts. Training takes its share of every
    batch of the whole job's (same order and seeds on every part), validation every parts-th image. A train
    channel distributed by S3 key (each host got its own files) is trained whole, with this part's share of
    `mini_batch_size`, for the number of batches that every part has (the exchange agrees on the smallest count);
    the processes of one host split its files. A Pipe-mode train channel on several parts ends each epoch where the
    first part's stream ends (see semseg.data.joint_epochs); a FullyReplicated stream gives each host every
    hosts-th pair; on a host of several processes its first one reads the FIFO and scatters their shares of each
    batch (semseg.data.shared_fifo).
    """
    label_channel = job.channel("label_map")
    pipe = pipe or PipeSettings()
    listed = list_channels(job) if listed is None else listed
    exchange = part.exchange
    if part.world > 1 and exchange is None:
        raise ValueError("a job of several parts needs their exchange")
    shard, local = (part.rank, part.world), (part.local_rank, part.local_world)
    validation_transform = (
        transforms.whole_image if config.whole_image_validation else transforms.center_crop(config.crop_size)
    )
    splits = (
        ("train", _train_transform(config), config.mini_batch_size, True),
        ("validation", validation_transform, config.validation_mini_batch_size, False),
    )
    loaders: list[Any] = []
    for split, transform, batch_size, training in splits:
        label_map = load_label_map(label_channel, split, config.num_classes)
        stream = None
        if split in job.pipes:
            dataset: Any = StreamDataset(label_map, transform)
            scatter = exchange.scatter_on_host if exchange is not None else None
            stream = _pipe_sampler(job, config, split, batch_size, seed, shard, pipe, local, scatter)
            sampler: BatchSampler = stream
        else:
            dataset = SegmentationDataset(list(listed[split]), label_map, transform)
            agree_min = partial(exchange.agree_min, "batches") if exchange is not None else None
            sampler = _file_sampler(job, config, split, dataset, batch_size, seed, shard, agree_min, local)
        made: Any = EpochLoader(loader.make(dataset, sampler, loader.workers), sampler)
        if stream is not None and training and exchange is not None and part.world > 1:
            made = AgreedBatches(made, stream, every_part(exchange.allreduce, part.world))
        loaders.append(made)
    log.info("Data loading: %d worker process(es)", loader.workers)
    return loaders[0], loaders[1]


def _pipe_sampler(
    job: Job,
    config: Config,
    split: str,
    batch_size: int,
    seed: int,
    shard: tuple[int, int],
    pipe: PipeSettings,
    local: tuple[int, int] = (0, 1),
    scatter: Scatter | None = None,
) -> PipeBatches | FedBatches:
    """The batches of a Pipe-mode split for part `shard`: its host's share of the batch, of the host's own stream
    (ShardedByS3Key) or of every hosts-th pair of the stream that every host gets (FullyReplicated); with
    several processes on the host, this process's share of that, read by the host's first process."""
    training = split == "train"
    hosts, host = shard[1] // local[1], shard[0] // local[1]
    own = _sharded_by_key(job, split) and hosts > 1
    share = max(1, _share(batch_size, (host, hosts)))
    expected = config.num_training_samples if training and not own else None
    if shard[1] > 1:
        log.info(
            "Channel %s (Pipe mode, %s): batches of %d on this host, of %s%s", split,
            "ShardedByS3Key" if own else "FullyReplicated", share,
            "its own stream" if own or hosts == 1 else f"every {hosts}th pair of the stream from pair {host}",
            f", read by its first process and shared by {local[1]}" if local[1] > 1 else "",
        )  # fmt: skip
    source = None
    if local[0] == 0:
        source = PipeBatches(
            job.paths.data_dir, split, share, shuffle=training, drop_last=training, seed=seed + (host if own else 0),
            settings=pipe, expected=expected, take=(0, 1) if own or hosts == 1 else (host, hosts),
        )  # fmt: skip
        if local[1] == 1:
            return source
    assert scatter is not None
    shares = [_share(share, (k, local[1])) for k in range(local[1])]
    length = (expected or 0) // share if training else 0
    return FedBatches(source, scatter, shares, split, length)


def _share(batch_size: int, shard: tuple[int, int]) -> int:
    """Part shard[0]'s share of a batch of `batch_size` split over shard[1] parts (5 over 2: 3 and 2)."""
    return batch_size // shard[1] + (shard[0] < batch_size % shard[1])


def _file_sampler(
    job: Job,
    config: Config,
    split: str,
    dataset: SegmentationDataset,
    batch_size: int,
    seed: int,
    shard: tuple[int, int],
    agree_min: Callable[[int], int] | None,
    local: tuple[int, int] = (0, 1),
) -> SeededBatchSampler:
    """The batches of a File-mode split for part `shard` of the job (validation: fewer images, see above)."""
    training = split == "train"
    own_files = _sharded_by_key(job, split) and shard[1] > 1
    if own_files and local[1] > 1:  # this host's files, split between its processes
        dataset.pairs = dataset.pairs[local[0] :: local[1]]
    if not training:
        if not own_files:
            dataset.pairs = dataset.pairs[shard[0] :: shard[1]]
        return SeededBatchSampler(len(dataset), batch_size, shuffle=False, drop_last=False, seed=seed)
    _check_train_size(config, len(dataset) * (shard[1] if own_files else 1))
    if not own_files:
        return SeededBatchSampler(len(dataset), batch_size, shuffle=True, drop_last=True, seed=seed, shard=shard)
    share = _share(batch_size, shard)
    batches = len(dataset) // share
    batches = agree_min(batches) if agree_min else batches
    if batches == 0:  # the same on every host: they all agreed on it
        raise ClientError(
            f"Channel 'train' is ShardedByS3Key, and a host received fewer images than its share of "
            f"mini_batch_size={config.mini_batch_size} over {shard[1]} hosts. Give every host more images, or "
            "lower mini_batch_size."
        )
    log.info("Channel train (ShardedByS3Key): %d batches of %d on this host", batches, share)
    return SeededBatchSampler(len(dataset), share, shuffle=True, drop_last=True, seed=seed + shard[0], limit=batches)


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


def _sharded_by_key(job: Job, split: str) -> bool:
    config = job.input_data_config.get(split)
    return isinstance(config, dict) and config.get("S3DistributionType") == "ShardedByS3Key"


def _train_transform(config: Config) -> transforms.Transform:
    if config.base_size:
        return transforms.gluoncv_train(config.crop_size, config.base_size)
    return transforms.seed_train(config.crop_size)
