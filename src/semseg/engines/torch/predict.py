"""The PyTorch engine's prediction: ImageNet-normalised input on the device, the precision it computes in, an
image -> class probabilities in one pass (the Scorer that whole-image validation slides over windows through
semseg.measures.sliding), and the server's predictor: a model folder (GluonCV files of either engine, or the managed
algorithm's) loaded into the PyTorch network without its aux head, predicting through semseg.measures.sliding exactly
as the MXNet engine's Predictor does (one pass within the pixel budget, else `crop_size` windows).

The server computes in float32 by default (TF32 convolutions on GPUs that have them, as in training);
SEMSEG_SERVE_AUTOCAST=bfloat16 or float16 computes under autocast, probabilities still float32
(benchmarks/RESULTS.md: its effect on the class map)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from semseg.contract.errors import ClientError
from semseg.contract.model_folder import ModelFolder
from semseg.engines.normalization import MEAN, STD
from semseg.engines.record import PredictorSettings, gpu_index
from semseg.engines.torch.devices import configure_cuda
from semseg.engines.torch.gluon import load_model_folder
from semseg.engines.torch.nets import Network, build_network
from semseg.measures.sliding import SlidingWindows

log = logging.getLogger(__name__)


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


AUTOCAST = {"bfloat16": Precision(torch.bfloat16), "float16": Precision(torch.float16)}


class Predictor(SlidingWindows):
    """A network in evaluation mode on one device."""

    def __init__(
        self, net: Network, device: torch.device, folder: ModelFolder, pixel_budget: int, precision: Precision
    ) -> None:
        super().__init__(Scorer(net, Inputs(device), precision), folder.config.crop_size, pixel_budget)
        self.net = net
        self.device = device
        self.num_classes = folder.config.num_classes


def network(folder: ModelFolder) -> Network:
    net = build_network(folder.config, aux=False)
    load_model_folder(net, folder)
    return net.eval()


def check_model(folder: ModelFolder) -> str:
    """ "" when the folder's weights load into its PyTorch network, else the ClientError's message."""
    try:
        network(folder)
    except ClientError as exc:
        return exc.message
    return ""


def precision(name: str | None) -> Precision:
    """float32 (None), or autocast to `name` (checked by the server's settings: bfloat16 or float16)."""
    return AUTOCAST[name] if name else FLOAT32


def load_predictor(folder: ModelFolder, device: str, settings: PredictorSettings) -> Predictor:
    """The model of `folder` on `device` ("cpu" or "gpu:<id>"): a server worker's model."""
    gpu, autocast = gpu_index(device), settings.autocast
    where = torch.device("cpu") if gpu is None else torch.device("cuda", gpu)
    if where.type == "cuda":
        configure_cuda(where)
    net = network(folder).to(where)
    log.info(
        "Worker %d: model loaded on %s (PyTorch %s, %s)", os.getpid(), where, torch.__version__, autocast or "float32"
    )
    return Predictor(net, where, folder, settings.pixel_budget, precision(autocast))
