"""A Pipe-mode channel of a host with several training processes (the torch engine's GPUs): SageMaker gives a
host one FIFO per channel and pass, and a FIFO's bytes go to one reader. So the host's first process reads it
(framing checks, skipped images and record numbers as with one process) and hands every process of the host,
itself included, its share of each of the host's batches: encoded pairs, which each decodes and augments in its
own data loader. One small collective of the host's processes per batch (`scatter`, the engine's)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from semseg.data.stream import PipeBatches

# The first process: every process's share of a batch (None: the pass ended) -> its own; the others pass None
# and get theirs. Every process of the host calls it alike.
Scatter = Callable[[list[Any] | None], Any]


class FedBatches:
    """A batch sampler: the first process's own PipeBatches (`source`) split by `shares`, or, in the host's
    other processes (`source` None), what the first one hands them."""

    def __init__(self, source: PipeBatches | None, scatter: Scatter, shares: list[int], channel: str, length: int):
        self.source = source
        self.scatter = scatter
        self.shares = shares
        self.channel = channel
        self.length = length  # the pass's batches as far as known before it (num_training_samples)

    def set_epoch(self, epoch: int) -> None:
        if self.source is not None:
            self.source.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[list[Any]]:
        if self.source is None:
            while (mine := self.scatter(None)) is not None:
                if mine:  # a short last validation batch may leave a process nothing
                    yield mine
            return
        for batch in self.source:
            parts, start = [], 0
            for share in self.shares:
                parts.append(batch[start : start + share])
                start += share
            mine = self.scatter(parts)
            if mine:
                yield mine
        self.scatter([None] * len(self.shares))  # the pass ended, for every process of the host

    def drain(self) -> None:
        """See PipeBatches.drain: the reading process reads the rest of its FIFO."""
        if self.source is not None:
            self.source.drain()
