"""What every engine's training loop shares, with no framework: fit with early stopping over epochs, the
loop's events (hooks) and results, what a loop is built with (LoopSettings), the arithmetic of an epoch's progress
points (EpochMeter), the divergence error and the aux loss weight.

An engine's loop (`Loop` in semseg.engines.mxnet.loop and semseg.engines.torch.loop, each built by its engine's
kit for semseg.fit.assembly from the network, its optimizer, the devices and LoopSettings) provides `train_epoch`
and `evaluate`; `fit` drives either.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from semseg.contract.config import Config
from semseg.contract.errors import AlgorithmError
from semseg.contract.options import DEFAULT_PIXEL_BUDGET
from semseg.fit.early_stopping import EarlyStopping
from semseg.measures.confusion import ConfusionMatrix
from semseg.measures.results import EpochResult, FitResult

# Mean per-pixel loss (nats, main + aux) above which training has diverged: a working network starts near
# 1.5 x ln(num_classes) (< 9) and falls; this is a true-class probability of e^-1000 on average.
DIVERGED_LOSS = 1000.0
AUX_WEIGHT = 0.5  # the aux head's loss weight: the managed algorithm's (its log shows aux loss on, weight 0.5)


@dataclass(frozen=True, eq=False)
class LoopSettings:
    """What an engine's loop needs of the job, the same for every engine."""

    num_classes: int
    crop_size: int
    global_batch: int  # mini_batch_size: the batch of all devices, processes and hosts; gradients are divided by it
    pixel_budget: int  # whole images above it are scored by windows (semseg.measures.sliding)
    mixed_precision: bool = False  # precision_dtype=float16 (the engines' devices refuse it on the CPU)
    class_weights: np.ndarray | None = None  # the loss's weight per class (semseg.fit.class_weights)
    aux_weight: float = AUX_WEIGHT

    @classmethod
    def of(
        cls, config: Config, pixel_budget: int = DEFAULT_PIXEL_BUDGET, class_weights: np.ndarray | None = None
    ) -> LoopSettings:
        """The settings of the job of `config` (SEMSEG_PIXEL_BUDGET: `pixel_budget`)."""
        return cls(
            config.num_classes,
            config.crop_size,
            config.mini_batch_size,
            pixel_budget,
            config.precision_dtype == "float16",
            class_weights,
        )


class Diverged(AlgorithmError):
    """The training loss became NaN, infinite, or larger than DIVERGED_LOSS."""

    def __init__(self, epoch: int, iteration: int) -> None:
        super().__init__(
            f"The train loss diverged (NaN, infinite or above {DIVERGED_LOSS:g} per pixel) at epoch {epoch}, "
            f"iteration {iteration}."
        )
        self.epoch = epoch
        self.iteration = iteration


class Hooks(Protocol):
    """What the loop tells its caller."""

    def epoch_start(self, epoch: int) -> None: ...

    def progress(self, epoch: int, iterations: int, samples_per_sec: float, learning_rate: float, loss: float) -> None:
        """A progress point; `loss`: this process's mean loss per sample since the last one."""

    def epoch_end(self, result: EpochResult, is_best: bool) -> None: ...


class NoHooks:
    """Hooks that do nothing: a loop run outside a job (benchmarks, tests)."""

    def epoch_start(self, epoch: int) -> None:
        pass

    def progress(self, epoch: int, iterations: int, samples_per_sec: float, learning_rate: float, loss: float) -> None:
        pass

    def epoch_end(self, result: EpochResult, is_best: bool) -> None:
        pass


class EpochMeter:
    """The arithmetic of one epoch's progress points and result, for every engine: the samples of all `world`
    processes, the speed between progress points, and this process's mean loss per sample since the last one.
    The engine sums its losses on the device and reads them only where the meter asks (a sync point)."""

    def __init__(self, hooks: Hooks, epoch: int, progress_every: int, world: int = 1) -> None:
        self.hooks = hooks
        self.epoch = epoch
        self.progress_every = progress_every
        self.world = world
        self.samples = self.tick_samples = 0
        self.tick_loss = 0.0
        self.start = self.tick = time.perf_counter()

    def count(self, iteration: int, batch: int) -> bool:
        """`iteration` trained this process's `batch` samples; whether it is a progress point."""
        self.samples += batch * self.world
        return iteration % self.progress_every == 0

    def progress(self, iteration: int, loss_sum: float, learning_rate: float) -> None:
        """The progress point of `iteration`, from this process's loss summed since the epoch began."""
        now = time.perf_counter()
        done = self.samples - self.tick_samples
        loss = (loss_sum - self.tick_loss) / max(done // self.world, 1)
        self.hooks.progress(self.epoch, iteration, done / max(now - self.tick, 1e-9), learning_rate, loss)
        self.tick, self.tick_samples, self.tick_loss = now, self.samples, loss_sum

    def result(self, loss_sum: float) -> tuple[float, float]:
        """(mean loss per sample, samples per second) of the epoch, from the loss summed over all processes."""
        elapsed = time.perf_counter() - self.start
        return loss_sum / max(self.samples, 1), self.samples / max(elapsed, 1e-9)


class TrainData(Protocol):
    """Training batches that can be re-seeded per epoch (see semseg.data.samplers)."""

    def set_epoch(self, epoch: int) -> None: ...

    def __iter__(self) -> Iterator[Any]: ...


class TrainLoop(Protocol):
    """An engine's network, loss and optimizer on its devices."""

    def train_epoch(
        self, batches: Iterable[Any], epoch: int, hooks: Hooks, progress_every: int, should_stop: Callable[[], bool]
    ) -> tuple[float, float] | None: ...

    def evaluate(self, batches: Iterable[Any], whole_images: bool) -> ConfusionMatrix: ...

    @property
    def learning_rate(self) -> float:
        """The rate of the last update."""

    def classes(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Class ids (HxW) of a few HxWx3 uint8 images, each at its own size, in this process alone (the pictures
        of a job): in evaluation mode, then back to training."""


def fit(
    loop: TrainLoop,
    train_batches: TrainData,
    validation_batches: Iterable[Any],
    *,
    epochs: int,
    whole_image_validation: bool,
    early_stopping: EarlyStopping,
    hooks: Hooks,
    progress_every: int = 20,
    first_epoch: int = 0,
    should_stop: Callable[[], bool] = lambda: False,
) -> FitResult:
    """Train `epochs` epochs (from `first_epoch`), evaluating after each; stop early when told to.

    `should_stop` is polled after every iteration; when it says so, the current epoch is abandoned
    (its checkpoint would not be resumable) and the result says `interrupted`.
    """
    history = []
    stopped = interrupted = False
    for epoch in range(first_epoch, epochs):
        if should_stop():
            interrupted = True
            break
        hooks.epoch_start(epoch)
        train_batches.set_epoch(epoch)
        trained = loop.train_epoch(train_batches, epoch, hooks, progress_every, should_stop)
        if trained is None:
            interrupted = True
            break
        loss, throughput = trained
        matrix = loop.evaluate(validation_batches, whole_image_validation)
        if should_stop():  # the validation may have been cut short (a stream stops early): not an epoch
            interrupted = True
            break
        result = EpochResult(epoch, loss, throughput, matrix.pixel_accuracy, matrix.miou, loop.learning_rate, matrix)
        history.append(result)
        is_best = early_stopping.update(epoch, result.miou)
        hooks.epoch_end(result, is_best)
        if early_stopping.stop(epoch):
            stopped = epoch + 1 < epochs
            break
    return FitResult(len(history), early_stopping.best, early_stopping.best_epoch, stopped, tuple(history), interrupted)
