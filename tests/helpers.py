"""Helpers shared by unit and functional tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def read_board(folder: Path) -> Any:
    """The event files of `folder`, read back by TensorBoard's own reader (purged events left out, as it shows)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    board.Reload()
    return board


def board_scalars(board: Any, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in board.Scalars(tag)]
