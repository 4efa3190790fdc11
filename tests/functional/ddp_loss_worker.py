"""One process of the two-process loss test (tests/functional/test_class_weights.py): torch and gloo only, so the
spawned processes import no MXNet."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from semseg.engines.torch.loss import SegmentationLoss


class TinyNet(nn.Module):
    """No batch statistics: any split of a batch must give the same gradient."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Conv2d(3, classes, 3, padding=1)
        self.aux = nn.Conv2d(3, classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(x), self.aux(x)


def gradients(
    images: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, classes: int, ddp: bool = False
) -> dict[str, np.ndarray]:
    """The parameters' gradients of one step of the weighted objective on this process's share."""
    net: nn.Module = TinyNet(classes)
    model = nn.parallel.DistributedDataParallel(net) if ddp else net
    loss = SegmentationLoss(classes, 0.5, torch.device("cpu"), weights)
    labels_t = torch.from_numpy(labels).long()
    pixels = loss.pixels(model(torch.from_numpy(images)), labels_t)
    loss.objective(pixels, labels_t).backward()
    return {name: p.grad.numpy().copy() for name, p in net.named_parameters() if p.grad is not None}


def run(rank: int, world: int, port: int, folder: str, share: list[int], classes: int, weighted: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    data = np.load(Path(folder) / "batch.npz")
    lo, hi = share[rank], share[rank + 1]
    weights = data["weights"] if weighted else None
    grads = gradients(data["images"][lo:hi], data["labels"][lo:hi], weights, classes, ddp=True)
    if rank == 0:
        np.savez(Path(folder) / "ddp.npz", **grads)
    dist.destroy_process_group()
