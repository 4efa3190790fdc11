"""What the parts of a job (hosts, or the processes of all hosts) agree on around training, whatever the engine,
from one exact sum of integers over them: every part's value, the smallest one, or that all have the same."""

from __future__ import annotations

from typing import Any

import numpy as np

from semseg.contract.errors import AlgorithmError


class Agreement:
    """The agreements of an engine's exchange, which gives `sum_counts`, `parts`, `part` and `part_name`."""

    @property
    def parts(self) -> int:
        raise NotImplementedError

    @property
    def part(self) -> int:
        """This part's index."""
        raise NotImplementedError

    def sum_counts(self, name: str, counts: np.ndarray) -> np.ndarray:
        """The exact int64 sum of non-negative integer `counts` over the parts (each part calls it alike)."""
        raise NotImplementedError

    def part_name(self, part: int) -> str:
        raise NotImplementedError

    def scatter_on_host(self, parts: list[Any] | None) -> Any:
        """The host's first process hands each process of the host its item of `parts`: an engine with one part
        per host (MXNet's) never has a host of several processes."""
        raise NotImplementedError("one part per host: nothing to scatter")

    def gather(self, name: str, value: int) -> list[int]:
        """Every part's non-negative `value`, in part order."""
        values = np.zeros(self.parts, np.int64)
        values[self.part] = value
        return [int(v) for v in self.sum_counts(name, values)]

    def agree_min(self, name: str, value: int) -> int:
        """The smallest of every part's `value`."""
        return min(self.gather(name, value))

    def check_same(self, name: str, value: int, what: str) -> None:
        """AlgorithmError unless every part has the same `value` (`what` names it in the message)."""
        values = self.gather(name, value)
        if len(set(values)) > 1:
            each = ", ".join(f"{self.part_name(part)}: {v}" for part, v in enumerate(values))
            raise AlgorithmError(f"The hosts disagree on {what} ({each}); they must all see the same.")
