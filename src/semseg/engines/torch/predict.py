"""The PyTorch engine's prediction: ImageNet-normalised input on the device, the precision it computes in, and
an image -> class probabilities in one pass (the Scorer that whole-image validation slides over windows
through semseg.fit.sliding, as the server does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from semseg.engines.normalization import MEAN, STD


@dataclass(frozen=True)
class Precision:
    """float32 (TF32 convolutions on GPUs that have them), or autocast to `dtype` (bf16, else fp16 + scaler)."""

    autocast: torch.dtype | None = None

    @property
    def needs_scaler(self) -> bool:
        return self.autocast == torch.float16

    def autocast_on(self, device: torch.device) -> Any:
        """The autocast context of this precision on `device` (a no-op for float32)."""
        dtype = self.autocast
        return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    @staticmethod
    def for_device(device: torch.device, mixed: bool) -> Precision:
        if not mixed:
            return Precision()
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return Precision(torch.float16)  # V100, T4: float16 with dynamic loss scaling
        return Precision(torch.bfloat16)


FLOAT32 = Precision()


class Inputs:
    """uint8 NHWC RGB batches -> float32 NCHW normalised with ImageNet mean/std on `device` (channels-last when
    asked: NHWC permuted to NCHW is channels-last in memory, for free)."""

    def __init__(self, device: torch.device, channels_last: bool = False) -> None:
        self.device = device
        self.channels_last = channels_last
        self.mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(STD, device=device).view(1, 3, 1, 1) * 255.0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = (x - self.mean) / self.std
        return x if self.channels_last else x.contiguous()


class Scorer:
    """An HxWx3 uint8 image -> [C, H, W] float32 class probabilities, in one pass of `net` (in eval mode)."""

    def __init__(self, net: nn.Module, inputs: Inputs, precision: Precision = FLOAT32) -> None:
        self.net = net
        self.inputs = inputs
        self.precision = precision

    @torch.inference_mode()
    def __call__(self, image: np.ndarray) -> np.ndarray:
        with self.precision.autocast_on(self.inputs.device):
            scores = self.net(self.inputs(torch.from_numpy(np.ascontiguousarray(image[np.newaxis]))))[0]
        return scores.float().softmax(dim=1)[0].cpu().numpy()
