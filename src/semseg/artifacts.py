"""What a job leaves in /opt/ml/model: model_algo-1, model_best.params, hyperparams.json, and the
symbol + params export (model-symbol.json, model-0000.params) that the managed algorithm lacks.

Every file is written to a temporary name and renamed (semseg.files), so a stop never leaves a
half-written artifact.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from semseg.config import Config
from semseg.files import BEST_PARAMS, EXPORT_PREFIX, FINAL_PARAMS, HYPERPARAMS, atomic_write, copy_file, write_text

if TYPE_CHECKING:  # MXNet loads only where weights are written: the torch engine's loop never imports it
    from mxnet.gluon import HybridBlock

log = logging.getLogger(__name__)


def save_params(net: HybridBlock, path: Path) -> None:
    atomic_write(path, lambda tmp: net.save_parameters(str(tmp)))


def write_hyperparams(config: Config, model_dir: Path) -> Path:
    path = model_dir / HYPERPARAMS
    write_text(path, json.dumps(config.to_hyperparameters(), indent=2, sort_keys=True) + "\n")
    return path


def finish(config: Config, net: HybridBlock, model_dir: Path) -> None:
    """The artifacts of the end of training (also after a stop request): final weights, best weights
    (the final ones when no epoch was validated yet) and the symbol export of the best weights."""
    save_params(net, model_dir / FINAL_PARAMS)
    best = model_dir / BEST_PARAMS
    if not best.exists():
        copy_file(model_dir / FINAL_PARAMS, best)
    export_symbol(config, best, model_dir)
    log.info("Artifacts in %s: %s", model_dir, ", ".join(sorted(p.name for p in model_dir.iterdir())))


def export_symbol(config: Config, params: Path, model_dir: Path) -> Path:
    """Export an inference network (no aux head) with `params` as model-symbol.json + model-0000.params.

    The exported graph takes 1x3xcrop_sizexcrop_size normalised input and returns per-class scores of the
    same size.
    """
    import mxnet as mx

    from semseg.model import build_model

    plain = replace(config, use_pretrained_model=False, syncbn=False)
    net = build_model(plain, [mx.cpu()], aux=False)
    net.load_parameters(str(params), ctx=mx.cpu(), ignore_extra=True)
    net.hybridize()
    net(mx.nd.zeros((1, 3, config.crop_size, config.crop_size)))
    prefix = model_dir / EXPORT_PREFIX
    tmp_prefix = model_dir / f".{EXPORT_PREFIX}.tmp"
    net.export(str(tmp_prefix), epoch=0)
    os.replace(f"{tmp_prefix}-symbol.json", f"{prefix}-symbol.json")
    os.replace(f"{tmp_prefix}-0000.params", f"{prefix}-0000.params")
    log.info("Exported %s-symbol.json and %s-0000.params", prefix, prefix)
    return Path(f"{prefix}-symbol.json")
