"""Early stopping and `fit` over epochs (semseg.fit.loop.fit), with a loop whose validation gives mIOUs from a
list: when fit stops, which epoch is the best, what the hooks hear. The whole job on both engines:
tests/functional/test_job_life.py."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pytest

from semseg.fit.early_stopping import EarlyStopping
from semseg.fit.loop import Hooks, fit
from semseg.measures.confusion import ConfusionMatrix
from semseg.measures.results import EpochResult


def confusion_with_miou(miou: float) -> ConfusionMatrix:
    """Two classes, each with IoU `miou` (counts in thousandths)."""
    right = round(1000 * miou)
    matrix = ConfusionMatrix(2)
    matrix.add_counts(np.array([right, 1000 - right, 0, right], dtype=np.int64))
    return matrix


class ListedLoop:
    """A loop whose epochs train nothing and whose validations give the listed mIOUs in turn."""

    def __init__(self, mious: list[float]) -> None:
        self.mious = iter(mious)
        self.trained: list[int] = []

    def train_epoch(
        self, batches: Iterable[Any], epoch: int, hooks: Hooks, progress_every: int, should_stop: Callable[[], bool]
    ) -> tuple[float, float] | None:
        self.trained.append(epoch)
        return 1.0, 10.0

    def evaluate(self, batches: Iterable[Any], whole_images: bool) -> ConfusionMatrix:
        return confusion_with_miou(next(self.mious))

    @property
    def learning_rate(self) -> float:
        return 0.1

    def classes(self, images: list[np.ndarray]) -> list[np.ndarray]:
        return []


class Batches:
    def set_epoch(self, epoch: int) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:
        return iter(())


class Heard:
    def __init__(self) -> None:
        self.ends: list[tuple[int, bool]] = []

    def epoch_start(self, epoch: int) -> None:
        pass

    def progress(self, epoch: int, iterations: int, samples_per_sec: float, learning_rate: float, loss: float) -> None:
        pass

    def epoch_end(self, result: EpochResult, is_best: bool) -> None:
        self.ends.append((result.epoch, is_best))


def run(mious: list[float], stopping: EarlyStopping, first_epoch: int = 0) -> tuple[Any, ListedLoop, Heard]:
    loop, heard = ListedLoop(mious), Heard()
    result = fit(
        loop, Batches(), [], epochs=len(mious) + first_epoch, whole_image_validation=False,
        early_stopping=stopping, hooks=heard, first_epoch=first_epoch,
    )  # fmt: skip
    return result, loop, heard


def test_without_early_stopping_every_epoch_runs_and_the_best_is_kept() -> None:
    result, loop, heard = run([0.2, 0.5, 0.4, 0.45], EarlyStopping(False, 5, 4, 0.0))
    assert loop.trained == [0, 1, 2, 3] and not result.stopped_early
    assert (result.best_epoch, result.best_miou) == (1, pytest.approx(0.5))
    assert heard.ends == [(0, True), (1, True), (2, False), (3, False)]


def test_it_stops_after_patience_epochs_without_improvement_but_never_before_min_epochs() -> None:
    result, loop, _ = run([0.5, 0.4, 0.4, 0.4, 0.4, 0.4], EarlyStopping(True, 4, 1, 0.0))
    assert loop.trained == [0, 1, 2, 3] and result.stopped_early and result.epochs_run == 4
    result, loop, _ = run([0.5, 0.4, 0.4, 0.4, 0.4, 0.4], EarlyStopping(True, 0, 2, 0.0))
    assert loop.trained == [0, 1, 2] and result.best_epoch == 0


def test_a_gain_below_the_tolerance_is_no_improvement_yet_the_best_weights_follow_it() -> None:
    stopping = EarlyStopping(True, 0, 2, tolerance=0.1)
    result, loop, heard = run([0.5, 0.52, 0.54, 0.9], stopping)
    assert loop.trained == [0, 1, 2] and result.stopped_early  # +4%, +8% of 0.5: not significant
    assert heard.ends == [(0, True), (1, True), (2, True)]  # the best weights still follow every new best
    assert stopping.best_epoch == 2 and stopping.epochs_without_improvement == 2


def test_the_last_epoch_is_not_an_early_stop() -> None:
    result, loop, _ = run([0.5, 0.4], EarlyStopping(True, 0, 1, 0.0))
    assert loop.trained == [0, 1] and not result.stopped_early


def test_a_resumed_run_goes_on_from_its_state() -> None:
    stopping = EarlyStopping.from_dict(EarlyStopping(True, 0, 3, 0.0, 0.6, 3, 1).to_dict())
    result, loop, _ = run([0.5, 0.7], stopping, first_epoch=4)
    assert loop.trained == [4, 5] and result.best_epoch == 5 and stopping.epochs_without_improvement == 0
