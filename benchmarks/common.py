"""Shared helpers: the device line every table states, alternating timed runs, tables and JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def device() -> str:
    """The machine in one line: GPUs, CPU model and cores, and the framework versions installed."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    frameworks, gpus = [], 0
    try:
        import mxnet as mx

        gpus = mx.context.num_gpus()
        frameworks.append(f"MXNet {mx.__version__}")
    except ImportError:  # a machine for the PyTorch engine only
        import torch

        gpus = torch.cuda.device_count()
        frameworks.append(f"torch {torch.__version__}")
    where = f"{gpus} GPU(s)" if gpus else "CPU only"
    return f"{where}; {cpu}, {os.cpu_count()} cores; {', '.join(frameworks)}"


def alternate(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Call each run `rounds` times, interleaved (A B A B ...), so drift hits all alike; each returns a rate."""
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            results[name].append(run())
    return results


def rate(work: Callable[[], int]) -> float:
    """Items per second of one call of `work` (which returns how many items it did)."""
    start = time.perf_counter()
    items = work()
    return items / (time.perf_counter() - start)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(map(str, header))] + [[f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [title, f"device: {device()}", ""]
    for i, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save(name: str, payload: dict[str, Any]) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps({"device": device(), "date": time.strftime("%Y-%m-%d"), **payload}, indent=2))
    return path
