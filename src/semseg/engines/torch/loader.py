"""The PyTorch engine's DataLoader over the shared data set and batch sampler (semseg.data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader


@dataclass(frozen=True)
class Loader:
    """torch's DataLoader, with `workers` data worker processes for this part (semseg.data.pipeline.Loader);
    `pin`: page-locked batches, for a GPU."""

    workers: int
    pin: bool = False

    def make(self, dataset: Any, sampler: Any, workers: int) -> Any:
        """uint8 tensors; workers stay alive across epochs and keep two batches each in flight."""
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=self.pin,
            persistent_workers=workers > 0,
            prefetch_factor=2 if workers > 0 else None,
        )
