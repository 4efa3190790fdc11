"""The training batches of a Pipe-mode channel on one of several hosts (or processes): each streams its own FIFO,
whose length is known only at its end, yet all must take the same steps. So before every batch they agree, in
one small collective, whether every one of them still has one; the epoch ends for all when the first stream runs
out, and the others read the rest of theirs unused (logged), so that the next epoch starts on the next FIFO."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from semseg.data.samplers import EpochLoader

log = logging.getLogger(__name__)

AllHave = Callable[[bool], bool]  # this part has a batch -> whether every part has one (a collective)


class Stream(Protocol):
    """A Pipe-mode batch sampler (semseg.data.stream.PipeBatches, semseg.data.shared_fifo.FedBatches)."""

    channel: str

    def drain(self) -> None: ...


class AgreedBatches:
    """An EpochLoader of a Pipe-mode sampler whose epochs end for every part at the same batch."""

    def __init__(self, loader: EpochLoader, sampler: Stream, all_have: AllHave) -> None:
        self.loader = loader
        self.sampler = sampler
        self.all_have = all_have

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        batches = iter(self.loader)
        taken = 0
        while True:
            batch = next(batches, None)
            if not self.all_have(batch is not None):
                break
            taken += 1
            yield batch
        if batch is not None:
            log.info(
                "Channel %r (Pipe mode): another host's stream ended after %d batches; every host ends the epoch "
                "there, and this one reads the rest of its stream unused",
                self.sampler.channel,
                taken,
            )
            del batches  # the loader's prefetching ends before the FIFO is drained
            self.sampler.drain()
