"""The MXNet engine's network and trainer as files: checkpoint folders and model_best.params."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
from mxnet import gluon

from semseg.artifacts import save_params
from semseg.files import BEST_PARAMS, copy_file
from semseg.model import load_weights


class MXNetState:
    engine = "mxnet"
    files = ("model.params", "trainer.states")
    best_file = "best.params"

    def __init__(self, net: gluon.Block, trainer: gluon.Trainer) -> None:
        self.net = net
        self.trainer = trainer

    def save(self, folder: Path) -> None:
        self.net.save_parameters(str(folder / self.files[0]))
        self.trainer.save_states(str(folder / self.files[1]))

    def check(self, folder: Path) -> None:
        saved = mx.nd.load(str(folder / self.files[0]))
        params = self.net._collect_params_with_prefix()
        if set(saved) != set(params) or any(saved[k].shape != params[k].shape for k in params):
            raise ValueError("its weights do not fit this network")

    def load(self, folder: Path) -> None:
        contexts = list(next(iter(self.net.collect_params().values())).list_ctx())
        load_weights(self.net, folder / self.files[0], contexts, f"checkpoint {folder}")
        self.trainer.load_states(str(folder / self.files[1]))

    def keep_best(self, model_dir: Path) -> None:
        """The network's weights are the best so far: write model_best.params now."""
        save_params(self.net, model_dir / BEST_PARAMS)

    def restore_best(self, best: Path, model_dir: Path) -> None:
        """A resumed job's best weights (the checkpoint's best file) become model_best.params."""
        copy_file(best, model_dir / BEST_PARAMS)
