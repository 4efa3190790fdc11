"""Pixel-wise softmax cross-entropy with an auxiliary head, hybridizable, exact on any number of devices.

Per pixel: the negative log-likelihood of its class times its class's weight (`weights`, a 256-entry table
indexed by the label: the class weights, 1 when the job has none, 0 for `ignore_label`), so pixels labelled
`ignore_label` count as 0. Two outputs per device:
- `objective`, what is differentiated: the sum over the device's pixels of main + aux_weight x aux,
  divided by the weighted count of labelled pixels of the whole batch (`scale` = 1 / that count, the same on
  every device and host; semseg.fit.class_weights.pixel_weights). Summed over devices this is one loss over
  the whole batch, so a batch split 2 + 1 over two devices gets exactly the gradient of the unsplit batch.
  Unweighted, the count is the number of labelled pixels, as before class weights existed. The main head's
  gradient then equals that of GluonCV's MixSoftmaxCrossEntropyLoss on one device (SoftmaxOutput,
  normalization "valid"); unlike it, the aux head's weight applies to the gradient (SoftmaxOutput ignores
  the weight of its output) and no device's gradient depends on how many pixels the other devices got.
- `per_sample`, what is reported: the mean per-pixel weighted loss of each sample (main + aux_weight x aux), (N,).
"""

from __future__ import annotations

from typing import Any

from mxnet.gluon import HybridBlock


class SegmentationLoss(HybridBlock):
    def __init__(self, aux_weight: float, ignore_label: int) -> None:
        super().__init__()
        self.aux_weight = aux_weight
        self.ignore_label = ignore_label

    def _nll(self, F: Any, pred: Any, label: Any) -> Any:
        """(N, H, W) negative log-likelihood, 0 where the label is ignored."""
        nll = -F.pick(F.log_softmax(pred, axis=1), label, axis=1)
        return F.where(label == self.ignore_label, F.zeros_like(nll), nll)

    def hybrid_forward(self, F: Any, pred: Any, aux: Any, label: Any, scale: Any, weights: Any) -> tuple[Any, Any]:
        """`label`: float32 class ids (N, H, W); `scale`: (1,) 1 / weighted labelled pixels of the whole batch;
        `weights`: (256,) the weight of each label value."""
        nll = self._nll(F, pred, label) + self.aux_weight * self._nll(F, aux, label)
        pixels = nll * F.take(weights, label)
        objective = F.broadcast_mul(F.sum(pixels).reshape((1,)), scale)
        return objective, F.mean(pixels, axis=0, exclude=True)
