"""The MXNet engine's DataLoader over the shared data set and batch sampler (semseg.data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mxnet.gluon.data import DataLoader

from semseg.contract.signals import forked_workers_signals


@dataclass(frozen=True)
class Loader:
    """Gluon's DataLoader, with `workers` data worker processes for this part (semseg.data.pipeline.Loader)."""

    workers: int

    def make(self, dataset: Any, sampler: Any, workers: int) -> Any:
        """Worker processes when workers > 0 (batches in shared memory), else loading in this process. The workers
        are forked as the loader is made, with the signal handling of semseg.contract.signals.worker_signals."""
        with forked_workers_signals():
            return DataLoader(dataset, batch_sampler=sampler, num_workers=workers)
