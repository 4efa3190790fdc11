"""Either engine's DataLoader over the same data set and seeded batch sampler; each framework is imported
only by its own loader, so the PyTorch engine never loads MXNet."""

from __future__ import annotations

from typing import Any

from semseg.data.dataset import SeededBatchSampler, SegmentationDataset


def mxnet_loader(dataset: SegmentationDataset, sampler: SeededBatchSampler, workers: int) -> Any:
    """Worker processes when workers > 0 (batches in shared memory), else loading in this process."""
    from mxnet.gluon.data import DataLoader

    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers)


def torch_loader(dataset: SegmentationDataset, sampler: SeededBatchSampler, workers: int, *, pin: bool) -> Any:
    """uint8 tensors; workers stay alive across epochs and keep two batches each in flight."""
    from torch.utils.data import DataLoader

    return DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
    )
