"""What a job does at the loop's events: per-epoch seeding, the managed log lines, model_best.params
whenever mIOU improves, and a checkpoint after every epoch."""

from __future__ import annotations

import logging
from pathlib import Path

import mxnet as mx

from semseg.artifacts import save_params
from semseg.checkpoint import CheckpointStore
from semseg.early_stopping import EarlyStopping
from semseg.engine import EpochResult, Loop
from semseg.files import BEST_PARAMS
from semseg.report import Reporter

log = logging.getLogger(__name__)


class JobHooks:
    def __init__(
        self,
        reporter: Reporter,
        loop: Loop,
        model_dir: Path,
        seed: int,
        checkpoints: CheckpointStore | None,
        early_stopping: EarlyStopping,
    ) -> None:
        self.reporter = reporter
        self.loop = loop
        self.model_dir = model_dir
        self.seed = seed
        self.checkpoints = checkpoints
        self.early_stopping = early_stopping

    def epoch_start(self, epoch: int) -> None:
        # Dropout draws from MXNet's generator: a seed per epoch makes a resumed run repeat the original.
        mx.random.seed(self.seed * 100_003 + epoch)

    def progress(self, epoch: int, iterations: int, samples_per_sec: float, learning_rate: float) -> None:
        self.reporter.progress(epoch, iterations, samples_per_sec, learning_rate)

    def epoch_end(self, result: EpochResult, is_best: bool) -> None:
        self.reporter.epoch_end(result.epoch, result.train_loss, result.throughput, result.pixel_accuracy, result.miou)
        if is_best:
            save_params(self.loop.net, self.model_dir / BEST_PARAMS)
            log.info("Epoch %d: best validation mIOU so far, saved %s", result.epoch, BEST_PARAMS)
        if self.checkpoints is not None:
            self.checkpoints.save(result.epoch, self.loop.net, self.loop.trainer, self.early_stopping, is_best)
