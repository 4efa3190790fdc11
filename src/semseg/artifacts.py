"""What a job leaves in /opt/ml/model: model_algo-1, model_best.params, hyperparams.json, and the
symbol + params export (model-symbol.json, model-0000.params) that the managed algorithm lacks.

Every file is written to a temporary name and renamed, so a stop never leaves a half-written artifact.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import mxnet as mx
from mxnet.gluon import HybridBlock

from semseg.config import Config

log = logging.getLogger(__name__)

FINAL_PARAMS = "model_algo-1"
BEST_PARAMS = "model_best.params"
HYPERPARAMS = "hyperparams.json"
EXPORT_PREFIX = "model"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` then rename tmp onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save_params(net: HybridBlock, path: Path) -> None:
    atomic_write(path, lambda tmp: net.save_parameters(str(tmp)))


def copy_file(source: Path, target: Path) -> None:
    atomic_write(target, lambda tmp: _copy(source, tmp))


def _copy(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)


def write_hyperparams(config: Config, model_dir: Path) -> Path:
    path = model_dir / HYPERPARAMS
    text = json.dumps(config.to_hyperparameters(), indent=2, sort_keys=True)
    atomic_write(path, lambda tmp: _write_text(tmp, text + "\n"))
    return path


def _write_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def export_symbol(build: Callable[[], HybridBlock], params: Path, model_dir: Path, crop_size: int) -> Path:
    """Export an inference network (no aux head) with `params` as model-symbol.json + model-0000.params.

    `build` makes a fresh network without the aux head on the CPU. The exported graph takes
    1x3xcrop_sizexcrop_size normalised input and returns per-class scores of the same size.
    """
    net = build()
    net.load_parameters(str(params), ctx=mx.cpu(), ignore_extra=True)
    net.hybridize()
    net(mx.nd.zeros((1, 3, crop_size, crop_size)))
    prefix = model_dir / EXPORT_PREFIX
    tmp_prefix = model_dir / f".{EXPORT_PREFIX}.tmp"
    net.export(str(tmp_prefix), epoch=0)
    os.replace(f"{tmp_prefix}-symbol.json", f"{prefix}-symbol.json")
    os.replace(f"{tmp_prefix}-0000.params", f"{prefix}-0000.params")
    log.info("Exported %s-symbol.json and %s-0000.params", prefix, prefix)
    return Path(f"{prefix}-symbol.json")
