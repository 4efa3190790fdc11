"""The stop that every host takes at the same iteration, whatever the engine: each host asks its exchange, once per
iteration, for the sum of the hosts' stop requests (one small collective), so a signal on any host stops all of
them at the same iteration and they all write their artifacts and end as stopped."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

import numpy as np

from semseg.contract.signals import StopSignal

log = logging.getLogger(__name__)

AllReduce = Callable[[str, np.ndarray], np.ndarray]  # (name, float32 values) -> their sum over the hosts


class CollectiveStop:
    """A stop request of any host, seen by all of them at the same call (each host calls it alike)."""

    def __init__(self, local: StopSignal, allreduce: AllReduce) -> None:
        self.local = local
        self.allreduce = allreduce
        self.by_peer = False

    @property
    def signum(self) -> int | None:
        if self.local.signum is not None:
            return self.local.signum
        return signal.SIGTERM if self.by_peer else None

    def __call__(self) -> bool:
        requested = float(self.local())
        stop = self.allreduce("stop", np.array([requested], np.float32))[0] > 0
        if stop and not requested and not self.by_peer:
            log.warning("Another host was asked to stop: stopping with it")
            self.by_peer = True
        return bool(stop)


def every_part(allreduce: AllReduce, parts: int) -> Callable[[bool], bool]:
    """Whether every one of the `parts` (hosts or processes) says yes: one small collective per call (each part
    calls it alike)."""

    def all_say(yes: bool) -> bool:
        return bool(allreduce("every-part", np.array([1.0 if yes else 0.0], np.float32))[0] > parts - 0.5)

    return all_say
