"""Which model of a folder answers a CPU server's requests: the fastest it holds, unless SEMSEG_SERVE_MODEL says.

`auto` (the default): on the CPU, model-int8.onnx (a job keeps it only where it passed its accuracy gate), else
model.onnx, else the GluonCV weights on the engine (SEMSEG_ENGINE), as every folder trained before the exports
and the managed algorithm's own; with GPUs, or with SEMSEG_SERVE_AUTOCAST (the engine's), the engine. `int8` and
`fp32` insist on that file (a ClientError naming it when it is missing, or when the host serves on GPUs or asks
for autocast); `engine` always serves the GluonCV weights.
The exports run on SEMSEG_SERVE_RUNTIME (OpenVINO by default; ONNX Runtime where OpenVINO is not installed).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from semseg.contract.errors import ClientError
from semseg.contract.files import ONNX_FP32, ONNX_INT8
from semseg.contract.model_folder import ModelFolder
from semseg.contract.options import ServeOptions
from semseg.engines.record import Engine, Predictor, PredictorSettings, Served
from semseg.export import runtime

log = logging.getLogger(__name__)

FILES = {"int8": ONNX_INT8, "fp32": ONNX_FP32}  # SEMSEG_SERVE_MODEL's values that name an export
KINDS = {ONNX_INT8: "INT8", ONNX_FP32: "FP32"}


def choose(folder: ModelFolder, given: ServeOptions, gpus: int, engine: Engine) -> Served:
    """What serves `folder` (no runtime loads here); ClientError for a setting the folder or host cannot meet."""
    if given.model == "engine" or (given.model == "auto" and given.autocast):
        return engine.served(folder)  # autocast is the engine's (SEMSEG_SERVE_AUTOCAST)
    if given.model in FILES:
        path = folder.path / FILES[given.model]
        if given.autocast:
            raise ClientError(
                f"SEMSEG_SERVE_AUTOCAST={given.autocast} is for the engine, and SEMSEG_SERVE_MODEL={given.model} "
                f"serves {path.name}: unset one of them."
            )
        if gpus:
            raise ClientError(
                f"SEMSEG_SERVE_MODEL={given.model} serves {path.name} on the CPU, and this host serves on {gpus} "
                "GPU(s): leave SEMSEG_SERVE_MODEL unset (or set it to engine) to serve on the GPUs."
            )
        if not path.is_file():
            raise ClientError(
                f"SEMSEG_SERVE_MODEL={given.model}: the model folder {folder.path} has no {path.name}. Jobs write it "
                f"at the end of training ({ONNX_INT8} only where it passes its accuracy gate: see evaluation.json's "
                "int8 entry); leave SEMSEG_SERVE_MODEL unset to serve the fastest model the folder holds."
            )
        return exported(path, _runtime(given.runtime, required=True))
    if gpus:
        return engine.served(folder)
    for name in (ONNX_INT8, ONNX_FP32):
        if (folder.path / name).is_file():
            on = _runtime(given.runtime, required=False)
            if on:
                return exported(folder.path / name, on)
    return engine.served(folder)


def exported(path: Path, on: str) -> Served:
    label = f"{path.name} ({KINDS.get(path.name, 'ONNX')}) on {runtime.LABELS[on]} {runtime.version(on)}"
    return Served(label, functools.partial(check_exported, path, on), functools.partial(load_exported, path, on))


def _runtime(wanted: str, *, required: bool) -> str:
    """`wanted`, else the other runtime that is installed; "" (or a ClientError when `required`) without one."""
    for on in (wanted, *(r for r in runtime.RUNTIMES if r != wanted)):
        if runtime.available(on):
            if on != wanted:
                log.warning("SEMSEG_SERVE_RUNTIME=%s is not installed in this image; serving on %s", wanted, on)
            return on
    if required:
        raise ClientError(f"Neither {' nor '.join(runtime.LABELS.values())} is installed: use the CPU image")
    log.warning("Neither %s is installed: the exports cannot serve here", " nor ".join(runtime.LABELS.values()))
    return ""


def load_exported(path: Path, on: str, folder: ModelFolder, device: str, settings: PredictorSettings) -> Predictor:
    config = folder.config
    return runtime.predictor(path, on, config.num_classes, config.crop_size, settings.pixel_budget, settings.threads)


def check_exported(path: Path, on: str, folder: ModelFolder) -> str:
    """ "" when the export loads and answers a crop_size image with num_classes probabilities, else why not."""
    config = folder.config
    fix = "Replace it, or set SEMSEG_SERVE_MODEL=engine to serve the GluonCV weights."
    try:
        probabilities = runtime.scorer(path, on)(np.zeros((config.crop_size, config.crop_size, 3), np.uint8))
    except Exception as exc:  # noqa: BLE001 - whatever the runtime raises, the message names the file
        lines = [line for line in str(exc).splitlines() if line.strip()] or [""]  # OpenVINO's reason comes last
        return f"{path} cannot be served by {runtime.LABELS[on]} ({type(exc).__name__}: {lines[-1]}). {fix}"
    if probabilities.shape[0] != config.num_classes:
        return (
            f"{path} answers {probabilities.shape[0]} classes and hyperparams.json has num_classes="
            f"{config.num_classes}: they come from different jobs. {fix}"
        )
    return ""
