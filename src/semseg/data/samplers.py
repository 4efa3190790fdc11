"""Which samples make each batch, one rule for File and Pipe mode: a generator per epoch from the job's seed and
the epoch (`epoch_rng`), a seed per sample drawn from it in the main process (so augmentation repeats whatever
the number of loader workers, and no two forked workers repeat each other's random streams), and batches cut
in order (`batches`: training drops the last partial batch, validation keeps it). File mode draws an order
(SeededBatchSampler); Pipe mode shuffles the stream through a buffer (semseg.data.stream.PipeBatches).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, TypeVar

import numpy as np

Key = tuple[int, int]  # (sample index, sample seed)
T = TypeVar("T")
_SEEDS = 2**31 - 1  # sample seeds are drawn from [0, _SEEDS)


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's order and sample seeds: the same for a resumed run as for the original."""
    return np.random.default_rng((seed, epoch))


def sample_seeds(rng: np.random.Generator, count: int | None = None) -> Any:
    """`count` sample seeds (an array), or one (an int) when `count` is None."""
    return rng.integers(0, _SEEDS, size=count) if count is not None else int(rng.integers(0, _SEEDS))


def batches(items: Iterable[T], size: int, drop_last: bool) -> Iterator[list[T]]:
    """`items` in batches of `size`, in order; the last partial one unless `drop_last`."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch and not drop_last:
        yield batch


class SeededBatchSampler:
    """Batches of (index, seed). Call `set_epoch` before each pass; same seed + epoch = same batches.

    `shard` = (rank, processes): this process's share of every batch (samples rank, rank + processes, ...),
    for one process per GPU; the batches, their order and the seeds are those of the whole job.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        shuffle: bool,
        drop_last: bool,
        seed: int,
        shard: tuple[int, int] = (0, 1),
        limit: int | None = None,
    ) -> None:
        self.shard = shard
        self.limit = limit  # at most this many batches (hosts with data of different sizes take the same steps)
        self.size = size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        batches = self.size // self.batch_size if self.drop_last else -(-self.size // self.batch_size)
        return batches if self.limit is None else min(batches, self.limit)

    def __iter__(self) -> Iterator[list[Key]]:
        rng = epoch_rng(self.seed, self.epoch)
        order = rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        seeds = sample_seeds(rng, self.size)
        keys = [(int(i), int(seeds[i])) for i in order]
        for batch in itertools.islice(batches(keys, self.batch_size, self.drop_last), len(self)):
            share = batch[self.shard[0] :: self.shard[1]]
            if share:
                yield share


class BatchSampler(Protocol):
    """What a DataLoader's batch sampler is to an EpochLoader: batches of keys, re-seeded per epoch."""

    def set_epoch(self, epoch: int) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[list[Any]]: ...


class EpochLoader:
    """A loader whose sampler is re-seeded per epoch: `set_epoch(e)` then iterate."""

    def __init__(self, loader: Iterable[Any], sampler: BatchSampler) -> None:
        self.loader = loader
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader)
