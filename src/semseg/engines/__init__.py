"""The engines, and the one place that chooses among them: `SEMSEG_ENGINE` -> an `Engine` record (how it
trains a job, checks and loads a model folder for the server, checks the GPUs the server would use, and its
name for the log). Each engine's folder (`mxnet/`, `torch/`) has the same shape (network, loop, state, optim,
loss, devices, files, predict, loader, job, hosts, exchange) and defines its record (semseg.engines.record) in
its `__init__`, which loads no framework: the framework loads when the record's functions are called. The server
calls only the record's serving functions, which load the engine's `predict` and never its training loop.

Adding an engine is one more line in ENGINES and a folder of its own; a runtime that serves exported models is a
`Served` record (semseg.export.serve).
An engine provides the math only; every promise of a job is kept above it, in `semseg.fit`.
"""

from __future__ import annotations

import importlib

from semseg.contract.errors import ClientError
from semseg.engines.record import Engine, Predictor, PredictorSettings, Served

__all__ = ["ENGINES", "Engine", "Predictor", "PredictorSettings", "Served", "engine"]

# SEMSEG_ENGINE's values -> the module whose ENGINE is that engine's record; the first is the default.
ENGINES = {"mxnet": "semseg.engines.mxnet", "torch": "semseg.engines.torch"}


def engine(name: str) -> Engine:
    """The engine called `name` (SEMSEG_ENGINE's value, any case); ClientError naming the engines there are."""
    key = name.strip().lower()
    if key not in ENGINES:
        raise ClientError(f"Environment variable SEMSEG_ENGINE={name!r} must be one of {', '.join(ENGINES)}")
    record: Engine = importlib.import_module(ENGINES[key]).ENGINE
    return record
