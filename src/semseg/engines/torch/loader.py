"""The PyTorch engine's DataLoader over the shared data set and batch sampler (semseg.data)."""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader


def torch_loader(dataset: Any, sampler: Any, workers: int, *, pin: bool) -> Any:
    """uint8 tensors; workers stay alive across epochs and keep two batches each in flight."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
    )
