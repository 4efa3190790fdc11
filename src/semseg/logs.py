"""Logging set-up, once per process (the CLI, each training process of a multi-process job, each server worker):
managed-algorithm style lines on stdout, which SageMaker sends to CloudWatch."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

LOG_FORMAT = "[%(asctime)s %(levelname)s %(thread)d] %(message)s"
LOG_DATEFMT = "%m/%d/%Y %H:%M:%S"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time of the record (it may be replaced, as pytest does)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Log lines on stdout at `level` (idempotent: one handler however often it is called)."""
    root = logging.getLogger()
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")  # file names that are not UTF-8 must not break the log
    if not any(isinstance(h, _StdoutHandler) for h in root.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
        root.addHandler(handler)
    root.setLevel(level)
