"""What every engine's training loop shares, with no framework: fit with early stopping over epochs, the
loop's events (hooks) and results, the divergence error and the aux loss weight.

An engine's loop (semseg.engines.mxnet.loop.Loop for MXNet, semseg.engines.torch.loop.TorchLoop) provides
`train_epoch` and `evaluate`; `fit` drives either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from semseg.contract.errors import AlgorithmError
from semseg.fit.early_stopping import EarlyStopping
from semseg.fit.metrics import ConfusionMatrix

# Mean per-pixel loss (nats, main + aux) above which training has diverged: a working network starts near
# 1.5 x ln(num_classes) (< 9) and falls; this is a true-class probability of e^-1000 on average.
DIVERGED_LOSS = 1000.0
AUX_WEIGHT = 0.5  # the aux head's loss weight: the managed algorithm's (its log shows aux loss on, weight 0.5)


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


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    throughput: float
    pixel_accuracy: float
    miou: float
    learning_rate: float = 0.0  # at the epoch's end
    confusion: ConfusionMatrix | None = field(default=None, compare=False, repr=False)  # the validation's counts


@dataclass(frozen=True)
class FitResult:
    epochs_run: int
    best_miou: float
    best_epoch: int
    stopped_early: bool
    history: tuple[EpochResult, ...]
    interrupted: bool = False  # a stop request ended training before `epochs`


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
