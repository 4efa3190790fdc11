"""Pixel-wise softmax cross-entropy with an auxiliary head, hybridizable.

The same mathematics as GluonCV's MixSoftmaxCrossEntropyLoss (which cannot be hybridized in
GluonCV 0.10: it reads `pred.dtype`): SoftmaxOutput supplies the gradient, normalised by the number of
non-ignored pixels; the reported value is the mean per-pixel negative log-likelihood of each sample
(ignored pixels count as 0), main head + aux_weight x aux head.
"""

from __future__ import annotations

from typing import Any

from mxnet.gluon import HybridBlock


class SegmentationLoss(HybridBlock):
    def __init__(self, aux_weight: float, ignore_label: int) -> None:
        super().__init__()
        self.aux_weight = aux_weight
        self.ignore_label = ignore_label

    def _head(self, F: Any, pred: Any, label: Any) -> Any:
        probabilities = F.SoftmaxOutput(
            pred, label, ignore_label=self.ignore_label, multi_output=True, use_ignore=True, normalization="valid"
        )
        loss = -F.pick(F.log(probabilities), label, axis=1, keepdims=True)
        loss = F.where(F.expand_dims(label, axis=1) == self.ignore_label, F.zeros_like(loss), loss)
        return F.mean(loss, axis=0, exclude=True)

    def hybrid_forward(self, F: Any, pred: Any, aux: Any, label: Any) -> Any:
        """`label`: float32 class ids (N, H, W); returns the loss per sample (N,)."""
        return self._head(F, pred, label) + self.aux_weight * self._head(F, aux, label)
