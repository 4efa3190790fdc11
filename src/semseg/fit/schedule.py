"""The learning rate of every optimizer update, without any framework: MXNet's PolyScheduler, CosineScheduler
and MultiFactorScheduler (no warm-up) as pure functions of the update count: the PyTorch engine's schedule;
the MXNet engine hands MXNet's own schedulers the same POLY_POWER (tested equal at every update).

MXNet counts updates from 1 (the first update runs at `learning_rate(1)`); past `total` updates poly and
cosine stay at their final value (0). Iterations per epoch come from Config.iterations_per_epoch.
"""

from __future__ import annotations

import math
from bisect import bisect_left

from semseg.contract.config import Config

POLY_POWER = 0.9  # GluonCV's segmentation scripts


class Schedule:
    def __init__(self, config: Config) -> None:
        iterations = config.iterations_per_epoch
        self.kind = config.lr_scheduler
        self.base = config.learning_rate
        self.total = max(1, iterations * config.epochs)
        self.factor = config.lr_scheduler_factor
        self.steps = sorted({max(1, epoch * iterations) for epoch in config.lr_scheduler_step})

    def __call__(self, update: int) -> float:
        """The learning rate of update number `update` (1, 2, ...)."""
        if self.kind == "step":
            return self.base * self.factor ** bisect_left(self.steps, update)  # steps s with update > s
        progress = min(update, self.total) / self.total
        if self.kind == "poly":
            return self.base * (1.0 - progress) ** POLY_POWER
        return self.base * (1.0 + math.cos(math.pi * progress)) / 2.0
