"""The MXNet engine's files of a network: its weights as a GluonCV parameter file (`save_parameters`), and the
symbol file (model-symbol.json + model-0000.params) of a GluonCV parameter file, which the job's top writes for
every engine's job (semseg.training). The format of the parameter files is engine-neutral
(semseg.engines.gluon_files)."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

import mxnet as mx
from mxnet.gluon import HybridBlock

from semseg.contract.config import Config
from semseg.contract.files import SYMBOL_PREFIX, atomic_write, fsync, no_partial
from semseg.engines.mxnet.network import build_model

log = logging.getLogger(__name__)


def save_params(net: HybridBlock, path: Path) -> None:
    """The network's weights as a GluonCV parameter file (`HybridBlock.save_parameters`), atomically."""
    atomic_write(path, lambda tmp: net.save_parameters(str(tmp)))


def write_symbol(config: Config, params: Path, model_dir: Path) -> Path:
    """The inference network (no aux head) with `params` as model-symbol.json + model-0000.params.

    The graph takes 1x3xcrop_sizexcrop_size normalised input and returns per-class scores of the
    same size.
    """
    plain = replace(config, use_pretrained_model=False, syncbn=False)
    net = build_model(plain, [mx.cpu()], aux=False)
    net.load_parameters(str(params), ctx=mx.cpu(), ignore_extra=True)
    net.hybridize()
    net(mx.nd.zeros((1, 3, config.crop_size, config.crop_size)))
    prefix = model_dir / SYMBOL_PREFIX
    tmp_prefix = model_dir / f".{SYMBOL_PREFIX}.tmp"
    temporary = [Path(f"{tmp_prefix}{suffix}") for suffix in ("-0000.params", "-symbol.json")]
    with no_partial(Path(f"{prefix}-0000.params"), *temporary):
        net.export(str(tmp_prefix), epoch=0)
        # Both flushed, then the parameters renamed first: the graph, renamed last, completes the symbol file, so
        # a crash in between leaves parameters without a graph (none), never a graph with another job's
        # parameters (an earlier job's were moved aside at the start: semseg.contract.previous_outputs).
        for path in temporary:
            fsync(path)
        for path, suffix in zip(temporary, ("-0000.params", "-symbol.json"), strict=True):
            os.replace(path, f"{prefix}{suffix}")
    fsync(model_dir)
    log.info("Exported %s-symbol.json and %s-0000.params", prefix, prefix)  # the log line users know
    return Path(f"{prefix}-symbol.json")
