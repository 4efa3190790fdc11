"""Early-stopping state: plain data that the training loop updates and a checkpoint stores and restores."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class EarlyStopping:
    """Tracks the best mIOU; `stop` says when patience has run out (never before `min_epochs`)."""

    enabled: bool
    min_epochs: int
    patience: int
    tolerance: float
    best: float = float("-inf")
    best_epoch: int = -1
    epochs_without_improvement: int = 0

    def update(self, epoch: int, miou: float) -> bool:
        """Record an epoch's mIOU; return True when it is the best so far."""
        significant = self.best < 0 or miou > self.best * (1.0 + self.tolerance)
        self.epochs_without_improvement = 0 if significant else self.epochs_without_improvement + 1
        if miou > self.best:
            self.best, self.best_epoch = miou, epoch
            return True
        return False

    def stop(self, epoch: int) -> bool:
        return self.enabled and epoch + 1 >= self.min_epochs and self.epochs_without_improvement >= self.patience

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> EarlyStopping:
        return cls(**state)
