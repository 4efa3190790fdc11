"""The server's prediction: an MXNet network on one device, scored at the image's own size through
semseg.sliding (one pass within the pixel budget, else sliding `crop_size` windows)."""

from __future__ import annotations

import mxnet as mx
from mxnet.gluon import HybridBlock

from semseg.engine import mxnet_score
from semseg.sliding import SlidingWindows, window_starts

__all__ = ["Predictor", "mxnet_score", "window_starts"]


class Predictor(SlidingWindows):
    """A network in inference mode on one device."""

    def __init__(self, net: HybridBlock, ctx: mx.Context, crop_size: int, pixel_budget: int) -> None:
        super().__init__(mxnet_score(net, ctx), crop_size, pixel_budget)
        self.net = net
        self.ctx = ctx
