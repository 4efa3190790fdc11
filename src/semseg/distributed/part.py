"""Which part of a job this process is, and how it talks to the others: one value for both engines (a host of the
MXNet engine's parameter server is one part; a process of the PyTorch engine, on any host, is one part). The
job's assembly (semseg.fit.assembly) reads everything it needs of the job's shape from here: the data's share
(semseg.data.pipeline), the class counts' sum (semseg.fit.class_weights), who writes what (the leader) and
who logs (each host's first process)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Exchange(Protocol):
    """The small collectives of an engine's parts (semseg.distributed.agree.Agreement and the engine's transport);
    every part calls them alike, in the same order."""

    def allreduce(self, name: str, values: np.ndarray) -> np.ndarray:
        """The float32 sum of `values` over the parts."""

    def sum_counts(self, name: str, counts: np.ndarray) -> np.ndarray:
        """The exact int64 sum of non-negative integer `counts` over the parts."""

    def agree_min(self, name: str, value: int) -> int:
        """The smallest of every part's `value`."""

    def check_same(self, name: str, value: int, what: str) -> None:
        """AlgorithmError unless every part has the same `value`."""

    def scatter_on_host(self, parts: list[Any] | None) -> Any:
        """The host's first process hands each process of the host its item of `parts`."""

    def drain(self) -> None:
        """Every part's exchanges so far complete (before the parts stop early, and at the job's end)."""


@dataclass(frozen=True)
class Part:
    """Part `rank` of the job's `world` parts, `local_rank` of the `local_world` parts on its host; `exchange`
    talks to the others (None: the job is this one part)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    exchange: Exchange | None = None

    @property
    def leader(self) -> bool:
        """The first part of the first host: it writes hyperparams.json, the artifacts and the checkpoints."""
        return self.rank == 0

    @property
    def reports(self) -> bool:
        """Each host's first part: it writes its host's metric lines and log."""
        return self.local_rank == 0

    @property
    def hosts(self) -> int:
        return self.world // self.local_world

    @property
    def host(self) -> int:
        return self.rank // self.local_world
