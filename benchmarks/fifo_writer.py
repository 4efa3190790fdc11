"""SageMaker's Pipe-mode agent for the benchmarks: writes records into FIFO <folder>/train_<n>, one per pass,
each made when the one before it was written. No framework, so the GPU benchmark can use it too."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path


class Writer(threading.Thread):
    """Writes `records()` into FIFO folder/train_<n> for n = 0 .. passes-1."""

    def __init__(self, folder: Path, passes: int, records: Callable[[], Iterable[bytes]]) -> None:
        super().__init__(daemon=True)
        self.folder, self.passes, self.records = folder, passes, records

    def run(self) -> None:
        for n in range(self.passes):
            path = self.folder / f"train_{n}"
            os.mkfifo(path)
            with open(path, "wb") as fifo:
                for record in self.records():
                    fifo.write(record)
