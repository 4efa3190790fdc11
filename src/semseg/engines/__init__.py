"""The engines, and the one place that chooses among them: `SEMSEG_ENGINE` -> an `Engine` record (how it
trains a job, checks and loads a model folder for the server, checks the GPUs the server would use, and its
name for the log). Each engine's folder (`mxnet/`, `torch/`) has the same shape (network, loop, state, optim,
loss, devices, support, predict, loader, kit, exchange, and its way of meeting other hosts) and defines its
record (semseg.engines.record) in its `__init__`, which loads no framework: the framework loads when the record's
functions are called. The server calls only the record's serving functions, which load the engine's `predict`
and never its training loop.

Adding an engine is one more line in ENGINES and a folder of its own; a runtime that serves exported models is a
`Served` record (semseg.serving.choice).
An engine provides its framework's parts (devices, network, loop, state, loader, exchange) as a kit; every
promise of a job is kept above it, in `semseg.fit`, which assembles the job from that kit
(semseg.fit.assembly).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from semseg.contract.errors import ClientError
from semseg.contract.options import ENGINE_NAMES
from semseg.engines.record import Engine, Predictor, PredictorSettings, Served

if TYPE_CHECKING:
    from semseg.contract.config import Config

log = logging.getLogger(__name__)

__all__ = ["ENGINES", "Engine", "Predictor", "PredictorSettings", "Served", "engine", "write_symbol"]

# SEMSEG_ENGINE's values (semseg.contract.options.ENGINE_NAMES, the first the default) -> the module whose ENGINE is
# that engine's record: the folder of the same name.
ENGINES = {name: f"{__name__}.{name}" for name in ENGINE_NAMES}
SYMBOL_ENGINE = "mxnet"  # the symbol file is MXNet's format: that engine writes it for every engine's job


def engine(name: str) -> Engine:
    """The engine called `name` (SEMSEG_ENGINE's value, any case); ClientError naming the engines there are."""
    key = name.strip().lower()
    if key not in ENGINES:
        raise ClientError(f"Environment variable SEMSEG_ENGINE={name!r} must be one of {', '.join(ENGINES)}")
    record: Engine = importlib.import_module(ENGINES[key]).ENGINE
    return record


def write_symbol(config: Config, params: Path, model_dir: Path) -> bool:
    """The symbol file (model-symbol.json + model-0000.params) of the GluonCV file `params`, whatever engine
    trained it; False (with a warning) where MXNet is not installed (the PyTorch engine needs none)."""
    if config.vit:
        log.info("No symbol file (model-symbol.json): MXNet has no DINOv2; model.onnx is this model's graph")
        return False
    writer = engine(SYMBOL_ENGINE).write_symbol
    assert writer is not None
    try:
        writer(config, params, model_dir)
    except ModuleNotFoundError as exc:
        log.warning("No symbol file (model-symbol.json): %s, which writes it, is not installed", exc.name)
        return False
    return True
