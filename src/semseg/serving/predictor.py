"""The server's prediction: an MXNet network on one device, scored at the image's own size through
semseg.sliding (one pass within the pixel budget, else sliding `crop_size` windows).

Speed: the network is traced into a static graph for the size it scores, and on the CPU MXNet's MKL-DNN
backend fuses that graph (convolution + BatchNorm + ReLU): 1.4x the imperative network's images/s on one
core, measured on 480x360 images (benchmarks/RESULTS.md, Serving). GluonCV bakes the output size into the
graph, so a request of another size re-traces it (about 0.6 s on the CPU); windows all have one size, and an
endpoint's images usually do too.
"""

from __future__ import annotations

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock

from semseg.engine import normalize
from semseg.model import set_output_size
from semseg.sliding import SlidingWindows, window_starts

__all__ = ["Predictor", "TracedScore", "window_starts"]


class TracedScore:
    """An HxWx3 uint8 image -> [C, H, W] float32 probabilities, with the graph traced for the last size."""

    def __init__(self, net: HybridBlock, ctx: mx.Context) -> None:
        self.net = net
        self.ctx = ctx
        self.size: tuple[int, int] | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        batch = normalize(mx.nd.array(image[np.newaxis], ctx=self.ctx, dtype="uint8"))
        if (height, width) != self.size:
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
    """A network in inference mode on one device."""

    def __init__(self, net: HybridBlock, ctx: mx.Context, crop_size: int, pixel_budget: int) -> None:
        super().__init__(TracedScore(net, ctx), crop_size, pixel_budget)
        self.net = net
        self.ctx = ctx
