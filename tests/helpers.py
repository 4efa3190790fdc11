"""Helpers shared by unit and functional tests."""

from __future__ import annotations

import numpy as np

from semseg.data.labels import IGNORE
from semseg.fit.metrics import ConfusionMatrix


def confusion(num_classes: int, *batches: tuple[np.ndarray, np.ndarray]) -> ConfusionMatrix:
    """A confusion matrix of (labels, predictions) batches, counted as the engine counts on a device:
    a histogram of label * num_classes + prediction over the pixels not labelled IGNORE."""
    matrix = ConfusionMatrix(num_classes)
    for labels, predictions in batches:
        matrix.add(labels, predictions, IGNORE)
    return matrix
