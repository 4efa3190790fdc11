"""What a job does at the loop's events: per-epoch seeding, the managed log lines (and our per-class table and
time left, semseg.fit.progress), the best weights whenever mIOU improves, what people look at (output/data and
TensorBoard, semseg.outputs.recorder), and a checkpoint after every epoch (one that a full or read-only volume
refuses is an error line, and training goes on: semseg.fit.disk). The same for every engine."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from semseg.contract.config import Config
from semseg.contract.files import BEST_PARAMS, VolumeError
from semseg.contract.report import Reporter
from semseg.fit.artifacts import Weights, keep_best
from semseg.fit.checkpoint import CheckpointStore, EngineState
from semseg.fit.disk import log_checkpoint_failure
from semseg.fit.early_stopping import EarlyStopping
from semseg.fit.progress import TimeLeft, log_class_table
from semseg.measures.results import EpochResult
from semseg.outputs.recorder import Outputs

log = logging.getLogger(__name__)


class JobState(EngineState, Weights, Protocol):
    """An engine's network and optimizer: as checkpoint files, and its weights as GluonCV files."""


class JobHooks:
    def __init__(
        self,
        config: Config,
        reporter: Reporter,
        state: JobState,
        model_dir: Path | None,
        seed_epoch: Callable[[int], None],
        checkpoints: CheckpointStore | None,
        early_stopping: EarlyStopping,
        time_left: TimeLeft | None = None,
        outputs: Outputs | None = None,
    ) -> None:
        """`outputs`: output/data and TensorBoard (None: a host other than the first)."""
        self.config = config
        self.outputs = outputs
        self.time_left = time_left
        self.reporter = reporter
        self.state = state
        self.model_dir = model_dir
        self.seed_epoch = seed_epoch
        self.checkpoints = checkpoints
        self.early_stopping = early_stopping

    def epoch_start(self, epoch: int) -> None:
        # Dropout draws from the engine's generator: a seed per epoch makes a resumed run repeat the original.
        self.seed_epoch(epoch)
        if self.time_left is not None:
            self.time_left.epoch_start()

    def progress(self, epoch: int, iterations: int, samples_per_sec: float, learning_rate: float, loss: float) -> None:
        self.reporter.progress(epoch, iterations, samples_per_sec, learning_rate)
        if self.time_left is not None and self.reporter.enabled:
            log.info("%s", self.time_left.line(epoch, iterations, samples_per_sec))
        if self.outputs is not None:
            self.outputs.progress(epoch, iterations, loss, learning_rate)

    def epoch_end(self, result: EpochResult, is_best: bool) -> None:
        if self.time_left is not None:
            self.time_left.epoch_end()
        self.reporter.epoch_end(result.epoch, result.train_loss, result.throughput, result.pixel_accuracy, result.miou)
        if result.confusion is not None and self.reporter.enabled:
            log_class_table(result.epoch, result.confusion)
        if is_best and self.model_dir is not None:  # None: a host other than the first keeps nothing
            keep_best(self.state, self.model_dir)
            log.info("Epoch %d: best validation mIOU so far, kept for %s", result.epoch, BEST_PARAMS)
        if self.outputs is not None:
            self.outputs.epoch_end(result, is_best)
        if self.checkpoints is not None:
            record = self.outputs.record() if self.outputs is not None else None
            try:
                self.checkpoints.save(result.epoch, self.state, self.early_stopping, is_best, record)
            except VolumeError as exc:  # the model is what the job is for: the next epoch tries again
                log_checkpoint_failure(result.epoch, exc, self.config, self.checkpoints.folder)


def epoch_seed(seed: int, epoch: int) -> int:
    """The engine's random seed for an epoch (dropout): the same for a resumed run as for the original."""
    return seed * 100_003 + epoch
