from __future__ import annotations

import numpy as np
import pytest

from semseg.measures.confusion import ConfusionMatrix
from tests.helpers import confusion


def test_perfect_prediction() -> None:
    labels = np.array([[0, 1], [2, 2]])
    matrix = confusion(3, (labels, labels))
    assert matrix.pixel_accuracy == 1.0 and matrix.miou == pytest.approx(1.0)


def test_hand_computed_values_and_ignore() -> None:
    labels = np.array([0, 0, 1, 1, 255, 255])
    predictions = np.array([0, 1, 1, 1, 0, 1])
    matrix = confusion(2, (labels, predictions))
    assert matrix.matrix.tolist() == [[1, 1], [0, 2]]
    assert matrix.pixel_accuracy == pytest.approx(3 / 4)
    # IoU(0) = 1 / (2 + 1 - 1) = 0.5; IoU(1) = 2 / (2 + 3 - 2) = 2/3
    assert matrix.miou == pytest.approx((0.5 + 2 / 3) / 2)


def test_accumulates_over_batches_not_averaging_per_batch() -> None:
    labels = np.array([0, 0, 0, 1])
    predictions = np.array([0, 0, 1, 1])
    whole = confusion(2, (labels, predictions))
    split = confusion(2, (labels[:3], predictions[:3]), (labels[3:], predictions[3:]))
    assert split.miou == whole.miou
    per_batch_mean = (
        confusion(2, (labels[:3], predictions[:3])).miou + confusion(2, (labels[3:], predictions[3:])).miou
    ) / 2
    assert per_batch_mean != pytest.approx(whole.miou)


def test_absent_class_counts_as_zero_like_gluoncv() -> None:
    assert confusion(3, (np.array([0, 1]), np.array([0, 1]))).miou == pytest.approx(2 / 3)


def test_empty_matrix() -> None:
    assert ConfusionMatrix(2).pixel_accuracy == 0.0 and ConfusionMatrix(2).miou == 0.0
