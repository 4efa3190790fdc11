"""The PyTorch engine's network and optimizer as checkpoint files (PyTorch's own format, in the shared
checkpoint layout: model.pt, optimizer.pt, the best epoch's best.pt), and its weights as the GluonCV files of
semseg.fit.artifacts (through semseg.engines.torch.gluon)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from semseg.contract.config import Config
from semseg.engines.torch.gluon import save_gluon
from semseg.engines.torch.loop import Loop


def _cpu_copy(net: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in net.state_dict().items()}


class State:
    engine = "torch"
    files = ("model.pt", "optimizer.pt")
    best_file = "best.pt"

    def __init__(self, net: nn.Module, loop: Loop, config: Config) -> None:
        self.net = net  # the bare network (not its DDP wrapper): its state_dict keys are the Gluon paths
        self.loop = loop
        self.config = config

    def save(self, folder: Path) -> None:
        torch.save(_cpu_copy(self.net), folder / self.files[0])
        optimizer = self.loop.optimizer
        extra: dict[str, Any] = {"optimizer": optimizer.state_dict(), "updates": optimizer.updates}
        if self.loop.scaler is not None:
            extra["scaler"] = self.loop.scaler.state_dict()
        torch.save(extra, folder / self.files[1])

    def check(self, folder: Path) -> None:
        saved = torch.load(folder / self.files[0], map_location="cpu", weights_only=True)
        own = self.net.state_dict()
        if set(saved) != set(own) or any(saved[k].shape != own[k].shape for k in own):
            raise ValueError("its weights do not fit this network")

    def load(self, folder: Path) -> None:
        self.net.load_state_dict(torch.load(folder / self.files[0], map_location="cpu", weights_only=True))
        extra = torch.load(folder / self.files[1], map_location="cpu", weights_only=True)
        self.loop.optimizer.load_state_dict(extra["optimizer"])
        self.loop.optimizer.updates = int(extra["updates"])
        if self.loop.scaler is not None and "scaler" in extra:
            self.loop.scaler.load_state_dict(extra["scaler"])

    def save_gluon(self, path: Path) -> None:
        save_gluon(self.net, path)

    def best_to_gluon(self, best: Path, path: Path) -> None:
        save_gluon(self.net, path, torch.load(best, map_location="cpu", weights_only=True))
