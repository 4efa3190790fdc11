"""Pixel-wise softmax cross-entropy with an auxiliary head, weighted per class, exact on any number of processes:
the torch mirror of semseg.engines.mxnet.loss.

Per pixel: the class's weight (semseg.fit.class_weights.pixel_weights: 1 without class weights, 0 for the ignore
label) times the negative log-likelihood of main + aux_weight x aux, in float32. The objective of one process is
its sum over its pixels divided by the weighted count of labelled pixels of the whole batch (summed over the
processes with one small all-reduce) and multiplied by the number of processes, because DDP averages the
gradients: the averaged gradient is that of the unsplit batch however its labelled pixels fell on the processes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from semseg.data.labels import IGNORE
from semseg.fit.class_weights import MIN_WEIGHT_SUM, pixel_weights


class SegmentationLoss:
    def __init__(self, num_classes: int, aux_weight: float, device: torch.device, class_weights: np.ndarray | None):
        self.aux_weight = aux_weight
        self.table = torch.from_numpy(pixel_weights(num_classes, class_weights)).to(device)
        self.weight = None if class_weights is None else self.table[:num_classes]
        self.world = dist.get_world_size() if dist.is_initialized() else 1

    def pixels(self, outputs: tuple[torch.Tensor, ...], labels: torch.Tensor) -> torch.Tensor:
        """(N, H, W) weighted main + aux_weight x aux negative log-likelihood in float32, 0 on ignored pixels."""
        losses = F.cross_entropy(outputs[0].float(), labels, self.weight, ignore_index=IGNORE, reduction="none")
        if len(outputs) > 1:
            aux = F.cross_entropy(outputs[1].float(), labels, self.weight, ignore_index=IGNORE, reduction="none")
            losses = losses + self.aux_weight * aux
        return losses

    def objective(self, pixels: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """What this process differentiates (see the module's docstring)."""
        count = self.table[labels].sum()
        if self.world > 1:
            dist.all_reduce(count)  # on the device: no wait for the host
        return pixels.sum() * self.world / count.clamp(min=MIN_WEIGHT_SUM)
