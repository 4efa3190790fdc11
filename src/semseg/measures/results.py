"""What an epoch of training and a whole fit end with, for every engine, the job's hooks and what people look at
(semseg.outputs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from semseg.measures.confusion import ConfusionMatrix


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
