"""TensorBoard event files in /opt/ml/output/tensorboard, which SageMaker uploads when the job sets a TensorBoard
output config and its TensorBoard app reads. Written by the first host only, through tensorboardX: a maintained
writer that needs neither TensorFlow nor PyTorch (the MXNet images have neither) and runs on the protobuf that
this image pins for its RecordIO records.

All scalars share one axis, the optimizer updates of the learning-rate schedule (epoch x
Config.iterations_per_epoch + iteration), so per-step and per-epoch curves line up. Per epoch, at the epoch's
last update, (epoch + 1) x iterations per epoch: `train/loss`, `train/throughput`, `train/learning_rate`,
`validation/mIOU`, `validation/pixel_accuracy` and `class_iou/<id>` for every class: the values of the metric
lines, which TensorBoard keeps as float32. Per progress point: `progress/loss` (the mean loss per sample of this
process since the last point) and `progress/learning_rate`. Images, every epoch: `validation/<n>`, up to
semseg.outputs.pictures.MAX_PICTURES validation images beside their truth and prediction (semseg.outputs.pictures).

A resumed job appends: it writes a new event file in the same folder with `purge_step` at its first update (the
checkpoint's epoch's values are at the update before), so TensorBoard hides what the interrupted run wrote after
its checkpoint and the timeline goes on. A job that
starts at epoch 0 moves an earlier job's event files aside (into previous-<UTC time>/, which TensorBoard shows
as a run of its own). A failure to write is a warning that ends the event files, never the job.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from semseg.contract.files import move_aside
from semseg.measures.results import EpochResult

log = logging.getLogger(__name__)

EVENTS = "events.out.tfevents."  # the prefix of every event file's name
FLUSH_S = 30  # at most this long between a value and its event file on the disk (and in S3)
# tensorboardX queues events for a writer thread, which dies when a write fails (a full volume), after which a full
# queue blocks the job for ever: a queue no epoch's events can fill, and the thread checked before every write.
MAX_QUEUE = 10_000


class Board:
    """The event files of one job; every method is a no-op after a failure (logged once)."""

    def __init__(self, writer: Any, iterations_per_epoch: int) -> None:
        self.writer = writer
        self.iterations_per_epoch = max(1, iterations_per_epoch)

    @classmethod
    def open(cls, folder: Path, iterations_per_epoch: int, first_epoch: int) -> Board | None:
        """The writer for a job starting at `first_epoch`; None (with a warning) when it cannot be made."""
        try:
            from tensorboardX import SummaryWriter

            if first_epoch == 0:
                _set_aside_earlier(folder)
            purge = first_epoch * max(1, iterations_per_epoch) + 1 if first_epoch else None  # its first update
            # the pid: a resumed job's file never takes the name of the one it continues (named by the second)
            writer = SummaryWriter(
                str(folder),
                purge_step=purge,
                flush_secs=FLUSH_S,
                max_queue=MAX_QUEUE,
                filename_suffix=f".{os.getpid()}",
            )
        except Exception as exc:  # noqa: BLE001  # TensorBoard is for people: never the job's failure
            log.warning("No TensorBoard event files in %s (%s); training goes on", folder, exc)
            return None
        log.info("TensorBoard event files in %s", folder)
        return cls(writer, iterations_per_epoch)

    def step(self, epoch: int, iterations: int) -> int:
        return epoch * self.iterations_per_epoch + iterations

    def progress(self, epoch: int, iterations: int, loss: float, learning_rate: float) -> None:
        step = self.step(epoch, iterations)
        self._write(
            lambda w: (
                w.add_scalar("progress/loss", loss, step),
                w.add_scalar("progress/learning_rate", learning_rate, step),
            )
        )

    def epoch_end(self, result: EpochResult, pictures: list[np.ndarray]) -> None:
        step = self.step(result.epoch + 1, 0)
        scalars = {
            "train/loss": result.train_loss,
            "train/throughput": result.throughput,
            "train/learning_rate": result.learning_rate,
            "validation/mIOU": result.miou,
            "validation/pixel_accuracy": result.pixel_accuracy,
        }
        if result.confusion is not None:
            scalars.update({f"class_iou/{c:03d}": float(v) for c, v in enumerate(result.confusion.iou)})

        def write(w: Any) -> None:
            for tag, value in scalars.items():
                w.add_scalar(tag, value, step)
            for n, picture in enumerate(pictures):
                w.add_image(f"validation/{n}", picture, step, dataformats="HWC")

        self._write(write)

    def close(self) -> None:
        self._write(lambda w: w.close())
        self.writer = None

    def _write(self, write: Any) -> None:
        if self.writer is None:
            return
        if not _writing(self.writer):
            log.warning(
                "TensorBoard event files stop here (their writer failed, the volume may be full); training goes on"
            )
            self.writer = None
            return
        try:
            write(self.writer)
        except Exception as exc:  # noqa: BLE001
            log.warning("TensorBoard event files stop here (%s); training goes on", exc)
            self.writer = None


def _writing(writer: Any) -> bool:
    """Whether every event file's writer thread of `writer` (a tensorboardX SummaryWriter) still runs."""
    for file_writer in (getattr(writer, "all_writers", None) or {}).values():
        worker = getattr(getattr(file_writer, "event_writer", None), "_worker", None)
        if worker is not None and not worker.is_alive():
            return False
    return True


def _set_aside_earlier(folder: Path) -> None:
    earlier = sorted(p for p in folder.glob(f"{EVENTS}*") if p.is_file()) if folder.is_dir() else []
    if earlier:
        target = move_aside(folder, earlier)
        log.warning("%s holds an earlier job's TensorBoard event files: moved aside to %s", folder, target.name)
