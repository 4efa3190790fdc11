"""Pixel accuracy and mIOU from a confusion matrix accumulated over the whole validation set.

Semantics follow GluonCV's SegmentationMetric: pixels labelled 255 (data.labels.IGNORE) are not counted
(the engine leaves them out when it accumulates); IoU of a class is
intersection / union; mIOU is the mean over all `num_classes` classes (a class absent from both labels
and predictions counts as 0, as in GluonCV).
"""

from __future__ import annotations

import numpy as np


class ConfusionMatrix:
    """Rows: true class; columns: predicted class."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def add(self, labels: np.ndarray, predictions: np.ndarray, ignore: int) -> None:
        """Count (label, prediction) pairs of the pixels not labelled `ignore`, on the host."""
        labels = labels.reshape(-1).astype(np.int64)
        valid = labels != ignore
        index = labels[valid] * self.num_classes + predictions.reshape(-1).astype(np.int64)[valid]
        self.add_counts(np.bincount(index, minlength=self.num_classes**2))

    def add_counts(self, counts: np.ndarray) -> None:
        """Add a flat histogram of `label * num_classes + prediction` (as accumulated on a device)."""
        self.matrix += counts.astype(np.int64).reshape(self.num_classes, self.num_classes)

    @property
    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else 0.0

    @property
    def iou(self) -> np.ndarray:
        inter = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - inter
        return inter / np.maximum(union, np.spacing(1))

    @property
    def miou(self) -> float:
        return float(self.iou.mean())
