"""evaluation.json in /opt/ml/output/data (SageMaker uploads that folder as output.tar.gz with every job), and its
one writer: the validation of the best epoch, rewritten whenever the best mIOU improves (by the first host only),
and entries added after training (the INT8 gate's figures, semseg.export). Written atomically; a failure to
write it is a warning, never the job's failure."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from semseg.contract.files import EVALUATION, write_text
from semseg.measures.confusion import ConfusionMatrix

log = logging.getLogger(__name__)


def evaluation(epoch: int, matrix: ConfusionMatrix) -> dict[str, object]:
    return {
        "epoch": epoch,
        "mIOU": matrix.miou,
        "pixel_accuracy": matrix.pixel_accuracy,
        "per_class_iou": [float(v) for v in matrix.iou],
        "confusion_matrix": matrix.matrix.tolist(),  # counts of labelled pixels, truth in rows, prediction in columns
    }


def write_evaluation(folder: Path, epoch: int, matrix: ConfusionMatrix) -> None:
    """The best epoch's validation, replacing the file."""
    _write(folder, evaluation(epoch, matrix), "training goes on")


def add_entry(folder: Path, name: str, entry: object) -> None:
    """`entry` under `name` beside what the file holds (a file that cannot be read is started anew)."""
    path = folder / EVALUATION
    try:
        content = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        log.warning("Could not read %s (%s); writing it anew", path, exc)
        content = {}
    content[name] = entry
    _write(folder, content, f"its {name!r} entry is in the log only")


def _write(folder: Path, content: dict[str, object], otherwise: str) -> None:
    try:
        write_text(folder / EVALUATION, json.dumps(content) + "\n")
    except OSError as exc:
        log.warning("Could not write %s in %s (%s); %s", EVALUATION, folder, exc, otherwise)
