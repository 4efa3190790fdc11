"""GluonCV parameter files, written and read with MXNet's own functions: a network's weights, the symbol + params
export, and plain name -> array maps (the PyTorch engine's one bridge to GluonCV's format runs through here, one
way: it calls these functions and never imports MXNet itself)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.files import EXPORT_PREFIX, atomic_write, fsync, no_partial
from semseg.engines.mxnet.network import build_model

log = logging.getLogger(__name__)


def save_params(net: HybridBlock, path: Path) -> None:
    """The network's weights as a GluonCV parameter file (`HybridBlock.save_parameters`), atomically."""
    atomic_write(path, lambda tmp: net.save_parameters(str(tmp)))


def read_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    """A Gluon parameter file as name -> array (the `arg:`/`aux:` prefixes of symbol exports removed)."""
    try:
        loaded = mx.nd.load(str(path))
    except mx.MXNetError as exc:
        raise ClientError(f"{what} ({path}) cannot be read: {str(exc).splitlines()[0]}. Replace it.") from None
    if not isinstance(loaded, dict):
        raise ClientError(f"{what} ({path}) holds no parameter names. Replace it with a GluonCV parameter file.")
    return {name.split(":", 1)[-1]: array.asnumpy() for name, array in loaded.items()}


def save_arrays(arrays: Mapping[str, np.ndarray], path: Path) -> None:
    """Write a Gluon parameter file (what `HybridBlock.save_parameters` writes) from name -> array, as float32."""
    data = {name: mx.nd.array(array, dtype="float32") for name, array in arrays.items()}
    atomic_write(path, lambda tmp: mx.nd.save(str(tmp), data))


def export_symbol(config: Config, params: Path, model_dir: Path) -> Path:
    """Export an inference network (no aux head) with `params` as model-symbol.json + model-0000.params.

    The exported graph takes 1x3xcrop_sizexcrop_size normalised input and returns per-class scores of the
    same size.
    """
    plain = replace(config, use_pretrained_model=False, syncbn=False)
    net = build_model(plain, [mx.cpu()], aux=False)
    net.load_parameters(str(params), ctx=mx.cpu(), ignore_extra=True)
    net.hybridize()
    net(mx.nd.zeros((1, 3, config.crop_size, config.crop_size)))
    prefix = model_dir / EXPORT_PREFIX
    tmp_prefix = model_dir / f".{EXPORT_PREFIX}.tmp"
    temporary = [Path(f"{tmp_prefix}{suffix}") for suffix in ("-0000.params", "-symbol.json")]
    with no_partial(Path(f"{prefix}-0000.params"), *temporary):
        net.export(str(tmp_prefix), epoch=0)
        # Both flushed, then the parameters renamed first: the symbol file, renamed last, completes the export, so
        # a crash in between leaves parameters without a graph (no export), never a graph with another export's
        # parameters (an earlier job's were moved aside at the start: semseg.contract.previous_outputs).
        for path in temporary:
            fsync(path)
        for path, suffix in zip(temporary, ("-0000.params", "-symbol.json"), strict=True):
            os.replace(path, f"{prefix}{suffix}")
    fsync(model_dir)
    log.info("Exported %s-symbol.json and %s-0000.params", prefix, prefix)
    return Path(f"{prefix}-symbol.json")
