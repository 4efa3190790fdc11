"""What the log shows beyond the managed algorithm's lines (which semseg.contract.report writes, unchanged): the IoU
of every class after each validation, and the time left for the epoch and the job on the progress lines' cadence.
The same for every engine."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from semseg.measures.confusion import ConfusionMatrix

log = logging.getLogger(__name__)


def class_table(matrix: ConfusionMatrix) -> list[str]:
    """The lines of a readable per-class table: class id, IoU, the class's share of the labelled pixels."""
    truth = matrix.matrix.sum(axis=1)
    share = truth / max(int(truth.sum()), 1)
    lines = ["class  IoU     pixels"]
    lines += [f"{c:>5}  {iou:.4f}  {100 * s:6.2f}%" for c, (iou, s) in enumerate(zip(matrix.iou, share))]
    return lines


def log_class_table(epoch: int, matrix: ConfusionMatrix) -> None:
    log.info("Validation IoU per class, epoch %d (mIOU %.6f is their mean):", epoch, matrix.miou)
    for line in class_table(matrix):
        log.info("  %s", line)


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class TimeLeft:
    """Estimates from the progress points: the epoch's rest at the current speed, and every later epoch at the
    duration of the last whole epoch (training and validation), or at the current speed before one ended."""

    epochs: int
    iterations_per_epoch: int
    batch: float  # samples per iteration in the speed of the progress lines (this host's share)
    epoch_started: float = field(default_factory=time.monotonic)
    last_epoch_s: float | None = None

    def epoch_start(self) -> None:
        self.epoch_started = time.monotonic()

    def epoch_end(self) -> None:
        self.last_epoch_s = time.monotonic() - self.epoch_started

    def line(self, epoch: int, iterations: int, samples_per_sec: float) -> str:
        per_iteration = self.batch / max(samples_per_sec, 1e-9)
        rest = max(0, self.iterations_per_epoch - iterations) * per_iteration
        later = self.epochs - epoch - 1
        each = self.last_epoch_s if self.last_epoch_s is not None else self.iterations_per_epoch * per_iteration
        return f"Time left: epoch {epoch} about {clock(rest)}, job about {clock(rest + later * each)}"
