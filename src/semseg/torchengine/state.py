"""The PyTorch engine's network and optimizer as checkpoint files (PyTorch's own format, in the shared
checkpoint layout), and the best weights kept until the end of training, when they become the GluonCV file
model_best.params (artifacts_io: MXNet is only loaded then)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from semseg.torchengine.loop import TorchLoop


def _cpu_copy(net: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in net.state_dict().items()}


class TorchState:
    engine = "torch"
    files = ("model.pt", "optimizer.pt")
    best_file = "best.pt"

    def __init__(self, net: nn.Module, loop: TorchLoop) -> None:
        self.net = net  # the bare network (not its DDP wrapper): its state_dict keys are the Gluon paths
        self.loop = loop
        self.best: dict[str, torch.Tensor] | None = None

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

    def keep_best(self, model_dir: Path) -> None:
        self.best = _cpu_copy(self.net)

    def restore_best(self, best: Path, model_dir: Path) -> None:
        self.best = torch.load(best, map_location="cpu", weights_only=True)
