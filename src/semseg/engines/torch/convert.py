"""Gluon parameter names <-> the PyTorch networks' state_dict keys, on numpy arrays (no MXNet here).

The module trees have the same attribute paths (semseg.engines.torch.network), so only BatchNorm's names differ:
Gluon `gamma`/`beta` are PyTorch `weight`/`bias`; `running_mean`/`running_var` are shared; PyTorch's
`num_batches_tracked` has no Gluon twin (it only matters for momentum=None, which we never use).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

_TO_TORCH = {"gamma": "weight", "beta": "bias"}
_TO_GLUON = {v: k for k, v in _TO_TORCH.items()}
_TORCH_ONLY = ("num_batches_tracked",)


def _rename(name: str, table: Mapping[str, str]) -> str:
    prefix, _, last = name.rpartition(".")
    return f"{prefix}.{table.get(last, last)}" if prefix else table.get(last, last)


def _is_norm(net: nn.Module, name: str) -> bool:
    module = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def gluon_names(net: nn.Module) -> dict[str, str]:
    """state_dict key -> Gluon parameter name, for every tensor a GluonCV parameter file holds."""
    return {
        name: (_rename(name, _TO_GLUON) if _is_norm(net, name) else name)
        for name in net.state_dict()
        if not name.endswith(_TORCH_ONLY)
    }


def to_gluon(net: nn.Module, state: Mapping[str, torch.Tensor] | None = None) -> dict[str, np.ndarray]:
    """The network's weights (or `state`, a state_dict of it) as Gluon names -> float32 numpy arrays."""
    tensors = net.state_dict() if state is None else state
    return {
        gluon: tensors[name].detach().to("cpu", torch.float32).numpy().copy()
        for name, gluon in gluon_names(net).items()
    }


def from_gluon(net: nn.Module, arrays: Mapping[str, np.ndarray], *, strict: bool = True) -> list[str]:
    """Copy Gluon-named arrays into `net`; the file's names that `net` has no place for (e.g. the aux head).

    Raises ValueError naming a missing or mis-shaped tensor (`strict`: every tensor of `net` must be there).
    """
    state = net.state_dict()
    wanted = {gluon: name for name, gluon in gluon_names(net).items()}
    missing = [g for g in wanted if g not in arrays]
    if strict and missing:
        raise ValueError(f"{len(missing)} tensors missing, e.g. {missing[0]}")
    with torch.no_grad():
        for gluon_name, torch_name in wanted.items():
            if gluon_name not in arrays:
                continue
            value = np.asarray(arrays[gluon_name])
            target = state[torch_name]
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(f"{gluon_name} is {tuple(value.shape)} in the file, {tuple(target.shape)} here")
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(target.dtype))
    return sorted(set(arrays) - set(wanted))
