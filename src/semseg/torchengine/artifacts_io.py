"""GluonCV parameter files in and out of the PyTorch networks: the only module of the engine that imports
MXNet (lazily, and only here): its own `nd.load`/`nd.save`, no hand-written file format.

Read at the start: the ImageNet backbone from GluonCV's store, a seed model of the `model` channel.
Written at the end: model_algo-1, model_best.params and the symbol export, exactly what the MXNet engine
writes (same names, same Gluon parameter names, float32), so GluonCV and the server load either.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semseg import artifacts
from semseg.config import Config
from semseg.errors import ClientError
from semseg.files import BEST_PARAMS, FINAL_PARAMS, atomic_write, copy_file
from semseg.model_folder import ModelFolder
from semseg.torchengine.convert import from_gluon, gluon_names, to_gluon

log = logging.getLogger(__name__)


def read_params(path: Path, what: str) -> dict[str, np.ndarray]:
    """A Gluon parameter file as name -> array (the `arg:`/`aux:` prefixes of symbol exports removed)."""
    import mxnet as mx

    from semseg.gluoncv_import import gluoncv  # noqa: F401  # MXNet and GluonCV beside torch

    try:
        loaded = mx.nd.load(str(path))
    except mx.MXNetError as exc:
        raise ClientError(f"{what} ({path}) cannot be read: {str(exc).splitlines()[0]}. Replace it.") from None
    if not isinstance(loaded, dict):
        raise ClientError(f"{what} ({path}) holds no parameter names. Replace it with a GluonCV parameter file.")
    return {name.split(":", 1)[-1]: array.asnumpy() for name, array in loaded.items()}


def save_params(arrays: Mapping[str, np.ndarray], path: Path) -> None:
    """Write a Gluon parameter file (what `HybridBlock.save_parameters` writes) with MXNet's `nd.save`."""
    import mxnet as mx

    from semseg.gluoncv_import import gluoncv  # noqa: F401

    data = {name: mx.nd.array(array, dtype="float32") for name, array in arrays.items()}
    atomic_write(path, lambda tmp: mx.nd.save(str(tmp), data))


def load_backbone(net: nn.Module, config: Config, weights_root: Path) -> None:
    """GluonCV's ImageNet weights into the backbone part of `net` (the same file the MXNet engine reads)."""
    from semseg.model import BACKBONE_PARTS, backbone_weights_file

    path = backbone_weights_file(config.backbone, weights_root)
    saved = read_params(path, "Pretrained weight file")
    wanted = [g for g in gluon_names(net).values() if g.startswith(BACKBONE_PARTS)]
    missing = [name for name in wanted if name not in saved]
    if missing:
        raise ClientError(
            f"Pretrained weight file {path} does not fit the backbone: {len(missing)} missing parameters "
            f"(e.g. {missing[0]}). Replace it with GluonCV's file."
        )
    try:
        from_gluon(net, {name: saved[name] for name in wanted}, strict=False)
    except ValueError as exc:
        raise ClientError(f"Pretrained weight file {path} does not fit the backbone: {exc}") from None
    log.info("Loaded ImageNet backbone weights from %s (%d tensors)", path, len(wanted))


def load_model_folder(net: nn.Module, model: ModelFolder) -> None:
    """A model folder's weights (ours from either engine, or the managed algorithm's) into `net`."""
    arrays = read_params(model.weights, f"The weights of the model in {model.path}")
    try:
        from_gluon(net, arrays)
    except ValueError as exc:
        raise ClientError(
            f"The weights of the model in {model.path} ({model.weights}) do not fit this network: {exc}"
        ) from None
    log.info("Loaded %s", model.weights)


def finish(config: Config, net: nn.Module, best: Mapping[str, torch.Tensor] | None, model_dir: Path) -> None:
    """model_algo-1 (final weights), model_best.params (the best, else the final) and the symbol export."""
    save_params(to_gluon(net), model_dir / FINAL_PARAMS)
    if best is not None:
        save_params(to_gluon(net, best), model_dir / BEST_PARAMS)
    else:
        copy_file(model_dir / FINAL_PARAMS, model_dir / BEST_PARAMS)
    artifacts.export_symbol(config, model_dir / BEST_PARAMS, model_dir)
    log.info("Artifacts in %s: %s", model_dir, ", ".join(sorted(p.name for p in model_dir.iterdir())))
