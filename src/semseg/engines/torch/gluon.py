"""GluonCV parameter files in and out of the PyTorch networks (the engine-neutral format of
semseg.engines.gluon_files, read and written with numpy: no MXNet in this engine).

Read at the start: the ImageNet backbone from the weight store, a seed model of the `model` channel.
Written during and at the end of training (semseg.fit.artifacts): model_best.params and model_algo-1, exactly
what the MXNet engine writes (same names, same Gluon parameter names, float32), so GluonCV and the server load
either.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semseg.contract.errors import ClientError
from semseg.contract.model_folder import ModelFolder
from semseg.engines.gluon_files import read_arrays, save_arrays
from semseg.engines.torch.convert import from_gluon, gluon_names, to_gluon
from semseg.engines.weights import BACKBONE_PARTS

log = logging.getLogger(__name__)


def save_gluon(net: nn.Module, path: Path, state: Mapping[str, torch.Tensor] | None = None) -> None:
    """`net`'s weights (or `state`, a state_dict of it) as a GluonCV parameter file, atomically."""
    save_arrays(to_gluon(net, state), path)


def load_backbone(net: nn.Module, path: Path) -> None:
    """ImageNet weights (a GluonCV file: the same file the MXNet engine reads) into the backbone part of `net`."""
    saved = read_arrays(path, "Pretrained weight file")
    parts = getattr(net, "backbone_parts", BACKBONE_PARTS)
    wanted = [g for g in gluon_names(net).values() if g.startswith(parts)]
    missing = [name for name in wanted if name not in saved]
    if missing:
        raise ClientError(
            f"Pretrained weight file {path} does not fit the backbone: {len(missing)} missing parameters "
            f"(e.g. {missing[0]}). Replace it with the backbone's file (`semseg-weights import`)."
        )
    try:
        from_gluon(net, {name: saved[name] for name in wanted}, strict=False)
    except ValueError as exc:
        raise ClientError(f"Pretrained weight file {path} does not fit the backbone: {exc}") from None
    what = "ImageNet" if parts == BACKBONE_PARTS else "DINOv2"
    log.info("Loaded %s backbone weights from %s (%d tensors)", what, path, len(wanted))


def read_state_file(path: Path) -> dict[str, np.ndarray]:
    """A .pth file's state_dict (or a training checkpoint's `state_dict`/`model`) as float32 numpy arrays;
    ValueError that says what is wrong with the file."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise ValueError(f"is a damaged PyTorch .pth file: {type(exc).__name__}: {exc}") from None
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError("holds no name -> tensor map (a state_dict)")
    return {str(name): tensor.detach().float().numpy() for name, tensor in loaded.items()}


def load_model_folder(net: nn.Module, model: ModelFolder) -> None:
    """A model folder's weights (ours from either engine, or the managed algorithm's) into `net`."""
    arrays = read_arrays(model.weights, f"The weights of the model in {model.path}")
    try:
        from_gluon(net, arrays)
    except ValueError as exc:
        raise ClientError(
            f"The weights of the model in {model.path} ({model.weights}) do not fit this network: {exc}"
        ) from None
    log.info("Loaded %s", model.weights)
