"""The INT8 accuracy gate's decision (semseg.export.quantize.Verdict) on confusion matrices with known IoUs."""

from __future__ import annotations

import numpy as np

from semseg.export.quantize import Gate, Verdict
from semseg.measures.confusion import ConfusionMatrix

GATE = Gate(max_miou_loss=0.5, max_class_loss=2.0)


def matrix(*rows: list[int]) -> ConfusionMatrix:
    result = ConfusionMatrix(len(rows))
    result.add_counts(np.array(rows).reshape(-1))
    return result


FP32 = matrix([100, 0, 0], [0, 100, 0], [0, 0, 100])  # every class's IoU 1.0


def test_equal_predictions_pass() -> None:
    verdict = Verdict.of(FP32, FP32, GATE, images=4, calibration=8)
    assert verdict.kept and "within the limits" in verdict.reason
    assert verdict.to_json()["int8_mIOU"] == 1.0 and verdict.to_json()["calibration_images"] == 8


def test_one_class_losing_more_than_its_limit_fails_though_the_miou_passes() -> None:
    # class 2: 3 of 100 pixels predicted as class 0 -> IoU 0.97 (3 points); classes 0 (IoU 100/103) lose too
    int8 = matrix([100, 0, 0], [0, 100, 0], [3, 0, 97])
    verdict = Verdict.of(FP32, int8, Gate(max_miou_loss=5.0, max_class_loss=2.0), images=4, calibration=8)
    assert not verdict.kept
    assert "class 2's IoU 3.00 points lower (limit 2)" in verdict.reason and "mIOU" not in verdict.reason.split(": ")[1]


def test_an_miou_loss_over_its_limit_fails() -> None:
    int8 = matrix([99, 1, 0], [0, 100, 0], [0, 0, 100])  # about 0.66 points of mIOU, 1 point of class 0
    verdict = Verdict.of(FP32, int8, GATE, images=4, calibration=8)
    assert not verdict.kept and "mIOU 0.66 points lower (limit 0.5)" in verdict.reason
    assert "class" not in verdict.reason.split(": ", 1)[1]


def test_a_better_int8_model_passes() -> None:
    fp32 = matrix([99, 1, 0], [0, 100, 0], [0, 0, 100])
    assert Verdict.of(fp32, FP32, GATE, images=4, calibration=8).kept
