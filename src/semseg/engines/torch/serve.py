"""The PyTorch engine's server side: a model folder (GluonCV files of either engine, or the managed algorithm's)
loaded into the PyTorch network, predicting through semseg.fit.sliding exactly as the MXNet engine's Predictor
does (one pass within the pixel budget, else `crop_size` windows). No aux head: its weights are skipped.

float32 by default (TF32 convolutions on GPUs that have them, as in training); SEMSEG_SERVE_AUTOCAST=bfloat16 or
float16 computes under autocast, probabilities still float32 (benchmarks/RESULTS.md: its effect on the class map).
"""

from __future__ import annotations

import logging
import os

import torch

from semseg.contract.errors import ClientError
from semseg.contract.model_folder import ModelFolder
from semseg.engines.torch.devices import configure_cuda
from semseg.engines.torch.files import load_model_folder
from semseg.engines.torch.network import SegmentationNet
from semseg.engines.torch.predict import FLOAT32, Inputs, Precision, Scorer
from semseg.fit.sliding import SlidingWindows

log = logging.getLogger(__name__)

AUTOCAST = {"bfloat16": Precision(torch.bfloat16), "float16": Precision(torch.float16)}


class Predictor(SlidingWindows):
    """A network in evaluation mode on one device."""

    def __init__(
        self, net: SegmentationNet, device: torch.device, folder: ModelFolder, pixel_budget: int, precision: Precision
    ) -> None:
        super().__init__(Scorer(net, Inputs(device), precision), folder.config.crop_size, pixel_budget)
        self.net = net
        self.device = device
        self.num_classes = folder.config.num_classes


def network(folder: ModelFolder) -> SegmentationNet:
    config = folder.config
    net = SegmentationNet(config.algorithm, config.backbone, config.num_classes, aux=False)
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


def load_predictor(folder: ModelFolder, device: str, pixel_budget: int, autocast: str | None = None) -> Predictor:
    """The model of `folder` on `device` ("cpu" or "gpu:<id>"): a server worker's model."""
    where = torch.device("cuda", int(device.split(":")[1])) if device.startswith("gpu:") else torch.device("cpu")
    if where.type == "cuda":
        configure_cuda(where)
    net = network(folder).to(where)
    log.info(
        "Worker %d: model loaded on %s (PyTorch %s, %s)", os.getpid(), where, torch.__version__, autocast or "float32"
    )
    return Predictor(net, where, folder, pixel_budget, precision(autocast))
