"""Helpers shared by unit and functional tests."""

from __future__ import annotations

import numpy as np

from semseg.data.labels import IGNORE
from semseg.metrics import ConfusionMatrix


def confusion(num_classes: int, *batches: tuple[np.ndarray, np.ndarray]) -> ConfusionMatrix:
    """A confusion matrix of (labels, predictions) batches, counted as the engine counts on a device:
    a histogram of label * num_classes + prediction over the pixels not labelled IGNORE."""
    matrix = ConfusionMatrix(num_classes)
    for labels, predictions in batches:
        labels = labels.reshape(-1).astype(np.int64)
        valid = labels != IGNORE
        index = labels[valid] * num_classes + predictions.reshape(-1).astype(np.int64)[valid]
        matrix.add_counts(np.bincount(index, minlength=num_classes**2))
    return matrix
