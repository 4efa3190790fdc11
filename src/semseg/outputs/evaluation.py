"""evaluation.json in /opt/ml/output/data (SageMaker uploads that folder as output.tar.gz with every job): the
validation of the best epoch, rewritten whenever the best mIOU improves, by the first host only. Written
atomically; a failure to write it is a warning, never the job's failure."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from semseg.contract.files import write_text
from semseg.fit.metrics import ConfusionMatrix

log = logging.getLogger(__name__)

EVALUATION = "evaluation.json"


def evaluation(epoch: int, matrix: ConfusionMatrix) -> dict[str, object]:
    return {
        "epoch": epoch,
        "mIOU": matrix.miou,
        "pixel_accuracy": matrix.pixel_accuracy,
        "per_class_iou": [float(v) for v in matrix.iou],
        "confusion_matrix": matrix.matrix.tolist(),  # counts of labelled pixels, truth in rows, prediction in columns
    }


def write_evaluation(folder: Path, epoch: int, matrix: ConfusionMatrix) -> None:
    try:
        write_text(folder / EVALUATION, json.dumps(evaluation(epoch, matrix)) + "\n")
    except OSError as exc:
        log.warning("Could not write %s in %s (%s); training goes on", EVALUATION, folder, exc)
