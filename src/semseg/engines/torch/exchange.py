"""What the processes of a multi-process job of the PyTorch engine (one host or several) exchange around the
training steps, over gloo groups (CPU numbers: on NCCL each exchange would wait for the GPU's queued work): the
stop flag every iteration, the step count of ShardedByS3Key hosts, the class counts of class_weights=auto, the
epoch to resume from, the barrier before the hosts part, and a Pipe-mode channel's batches within a host. The
gradients and the validation counts go through DDP and the loop's own all-reduces."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from semseg.distributed.agree import Agreement
from semseg.distributed.part import Part


class Exchange(Agreement):
    """Collectives of every process of the job; each process calls them alike, in the same order."""

    def __init__(
        self,
        place: Part,
        hosts: tuple[str, ...],
        group: dist.ProcessGroup | None = None,
        host_group: dist.ProcessGroup | None = None,
    ) -> None:
        self.place = place
        self.hosts = hosts
        self.group = group  # None: the default group (gloo already)
        self.host_group = host_group  # gloo, this host's processes (a Pipe-mode channel's readers)

    def scatter_on_host(self, parts: list[Any] | None) -> Any:
        """The host's first process hands each of its processes its part of `parts` (semseg.data.shared_fifo)."""
        received: list[Any] = [None]
        first = self.place.rank - self.place.local_rank
        mine = parts if self.place.local_rank == 0 else None
        dist.scatter_object_list(received, mine, src=first, group=self.host_group)
        return received[0]

    def allreduce(self, name: str, values: np.ndarray) -> np.ndarray:
        """The sum of `values` over the processes (float32 stays float32, int64 sums exactly)."""
        tensor = torch.from_numpy(np.ascontiguousarray(values).copy())
        dist.all_reduce(tensor, group=self.group)
        return tensor.numpy()

    def sum_counts(self, name: str, counts: np.ndarray) -> np.ndarray:
        return self.allreduce(name, counts.astype(np.int64))

    @property
    def parts(self) -> int:
        return self.place.world

    @property
    def part(self) -> int:
        return self.place.rank

    def part_name(self, part: int) -> str:
        return f"{self.hosts[part // self.place.local_world]} (process {part})"

    def drain(self) -> None:
        """Every process reached this point (their steps' exchanges are over)."""
        dist.barrier(group=self.group)
