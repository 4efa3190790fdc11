"""The MXNet engine's prediction: an image -> class probabilities at the image's own size, through
semseg.measures.sliding (one pass within the pixel budget, else sliding `crop_size` windows). One scorer serves
both whole-image validation and the server.

Speed (the server): the network is traced into a static graph for the size it scores, and on the CPU MXNet's
MKL-DNN backend fuses that graph (convolution + BatchNorm + ReLU): 1.4x the imperative network's images/s on one
core, measured on 480x360 images (benchmarks/RESULTS.md, Serving). GluonCV bakes the output size into the
graph, so a request of another size re-traces it (about 0.6 s on the CPU); windows all have one size, and an
endpoint's images usually do too.
"""

from __future__ import annotations

import logging
import os

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock

from semseg.contract.errors import ClientError
from semseg.contract.model_folder import ModelFolder
from semseg.engines.mxnet.network import load_model, set_output_size
from semseg.engines.normalization import MEAN, STD
from semseg.engines.record import PredictorSettings, gpu_index
from semseg.measures.sliding import SlidingWindows, window_starts

__all__ = ["Predictor", "Scorer", "load_predictor", "normalize", "window_starts"]

log = logging.getLogger(__name__)


def normalize(batch: mx.nd.NDArray) -> mx.nd.NDArray:
    """uint8 NHWC RGB -> float32 NCHW normalised with ImageNet mean/std."""
    return mx.nd.image.normalize(mx.nd.image.to_tensor(batch), mean=MEAN, std=STD)


class Scorer:
    """An HxWx3 uint8 image -> [C, H, W] float32 probabilities, in one pass of a GluonCV network.

    `traced` (the server): the graph is traced for the last size scored (and MKL-DNN-fused on the CPU).
    Untraced (whole-image validation): the network runs imperatively, at any size, and keeps the hybridization
    its training loop gave it.
    """

    def __init__(self, net: HybridBlock, ctx: mx.Context, *, traced: bool = False) -> None:
        self.net = net
        self.ctx = ctx
        self.traced = traced
        self.size: tuple[int, int] | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        batch = normalize(mx.nd.array(image[np.newaxis], ctx=self.ctx, dtype="uint8"))
        if not self.traced:
            set_output_size(self.net, height, width)
        elif (height, width) != self.size:
            self._trace(batch, height, width)
        return np.asarray(mx.nd.softmax(self.net(batch)[0], axis=1)[0].asnumpy())

    def _trace(self, batch: mx.nd.NDArray, height: int, width: int) -> None:
        set_output_size(self.net, height, width)
        self.net._clear_cached_op()  # the old graph has the old size baked in
        if self.ctx.device_type == "cpu":
            self.net.optimize_for(batch, backend="MKLDNN", static_alloc=True, static_shape=True)
        else:
            self.net.hybridize(static_alloc=True, static_shape=True)
        self.size = (height, width)


class Predictor(SlidingWindows):
    """A network in inference mode on one device, scored through a traced Scorer."""

    def __init__(self, net: HybridBlock, ctx: mx.Context, crop_size: int, pixel_budget: int) -> None:
        super().__init__(Scorer(net, ctx, traced=True), crop_size, pixel_budget)
        self.net = net
        self.ctx = ctx

    @property
    def num_classes(self) -> int:
        return int(self.net.nclass)  # GluonCV's segmentation models keep their class count


def check_model(folder: ModelFolder) -> str:
    """ "" when the model folder's weights load into the network of its hyperparams.json (on the CPU), else the
    ClientError that says why: run by the server's parent in a child process before any worker starts."""
    try:
        load_model(folder, [mx.cpu()])
    except ClientError as exc:
        return exc.message
    return ""


def load_predictor(folder: ModelFolder, device: str, settings: PredictorSettings) -> Predictor:
    """The model of `folder` on `device` ("cpu" or "gpu:<id>"), ready to predict (a server worker's model)."""
    gpu = gpu_index(device)
    ctx = mx.cpu() if gpu is None else mx.gpu(gpu)
    net = load_model(folder, [ctx])
    log.info("Worker %d: model loaded on %s", os.getpid(), ctx)
    return Predictor(net, ctx, folder.config.crop_size, settings.pixel_budget)
