"""INT8 by ONNX Runtime's static quantization, and the accuracy gate that decides whether it is kept.

Quantization (`quantize_static`, not a quantizer of ours): QDQ format (quantize/dequantize pairs around each
convolution, which OpenVINO and ONNX Runtime both turn into INT8 kernels), weights int8 per output channel,
activations uint8 with ranges from calibration images (min/max), 7-bit weights (`reduce_range`: without AVX-512
VNNI, 8-bit products can saturate in the 16-bit sums of AVX2's VPMADDUBSW). Only convolutions, and not the
classifier's: resizing, softmax, pooling and the class scores stay float32.

The gate compares the INT8 model with the FP32 export on the same validation images, through the server's
predictor (same runtime, windows and pixel budget): kept only if its mIOU is at most `max_miou_loss` points below
the FP32 model's and no class's IoU is more than `max_class_loss` points below.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semseg.contract.files import no_partial
from semseg.export.graph import CLASSIFIERS, INPUT
from semseg.measures.confusion import ConfusionMatrix

POINTS = 100.0  # IoU points per unit


def quantize(fp32: Path, int8: Path, images: Iterable[np.ndarray]) -> int:
    """`fp32` quantized to `int8` (written whole or not at all), calibrated on `images` (HxWx3 uint8, one size);
    the number of calibration images."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self, source: Iterator[np.ndarray]) -> None:
            self.source = source
            self.count = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            image = next(self.source, None)
            if image is None:
                return None
            self.count += 1
            return {INPUT: np.ascontiguousarray(image[np.newaxis])}

    reader = Reader(iter(images))
    partial = int8.with_name(f".{int8.name}.tmp")
    advice = _Drop("pre-processing before quantization")  # its graph optimisations: the graph is folded already
    logging.getLogger().addFilter(advice)
    try:
        with no_partial(int8, partial):
            quantize_static(
                str(fp32),
                str(partial),
                reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv"],
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(CLASSIFIERS),
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={"CalibTensorRangeSymmetric": False},
                calibration_providers=["CPUExecutionProvider"],
            )
            os.replace(partial, int8)
    finally:
        logging.getLogger().removeFilter(advice)
    return reader.count


class _Drop(logging.Filter):
    """Leaves out the records that contain `text` (ONNX Runtime's advice, logged on the root logger)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@dataclass(frozen=True)
class Gate:
    max_miou_loss: float  # points of mIOU the INT8 model may lose against the FP32 export
    max_class_loss: float  # points of IoU any one class may lose


@dataclass(frozen=True)
class Verdict:
    """The gate's figures and decision (also evaluation.json's "int8" entry)."""

    images: int
    calibration_images: int
    fp32_miou: float
    int8_miou: float
    fp32_iou: Sequence[float]
    int8_iou: Sequence[float]
    gate: Gate
    kept: bool
    reason: str

    @classmethod
    def of(cls, fp32: ConfusionMatrix, int8: ConfusionMatrix, gate: Gate, images: int, calibration: int) -> Verdict:
        miou_loss = (fp32.miou - int8.miou) * POINTS
        class_loss = (fp32.iou - int8.iou) * POINTS
        worst = int(np.argmax(class_loss))
        problems = []
        if miou_loss > gate.max_miou_loss:
            problems.append(f"mIOU {miou_loss:.2f} points lower (limit {gate.max_miou_loss:g})")
        if class_loss[worst] > gate.max_class_loss:
            problems.append(f"class {worst}'s IoU {class_loss[worst]:.2f} points lower (limit {gate.max_class_loss:g})")
        figures = (
            f"mIOU {int8.miou:.4f} against FP32 {fp32.miou:.4f} ({-miou_loss:+.2f} points), largest class loss "
            f"{max(0.0, float(class_loss[worst])):.2f} points (class {worst}), on {images} validation image(s)"
        )
        reason = f"{figures}: " + ("; ".join(problems) if problems else "within the limits")
        return cls(
            images, calibration, fp32.miou, int8.miou, [float(v) for v in fp32.iou], [float(v) for v in int8.iou],
            gate, not problems, reason,
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "kept": self.kept,
            "reason": self.reason,
            "validation_images": self.images,
            "calibration_images": self.calibration_images,
            "fp32_mIOU": self.fp32_miou,
            "int8_mIOU": self.int8_miou,
            "fp32_per_class_iou": list(self.fp32_iou),
            "int8_per_class_iou": list(self.int8_iou),
            "max_miou_loss_points": self.gate.max_miou_loss,
            "max_class_loss_points": self.gate.max_class_loss,
        }
