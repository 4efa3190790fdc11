"""The MXNet engine's network and trainer as files: checkpoint folders (model.params, trainer.states, the
best epoch's best.params) and the GluonCV files of semseg.fit.artifacts (the checkpoint's weights already are one).
"""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
from mxnet import gluon

from semseg.contract.config import Config
from semseg.contract.files import copy_file
from semseg.engines.mxnet.network import load_weights
from semseg.engines.mxnet.optim import lr_scheduler
from semseg.engines.mxnet.symbol import save_params


class State:
    engine = "mxnet"
    files = ("model.params", "trainer.states")
    best_file = "best.params"

    def __init__(self, net: gluon.Block, trainer: gluon.Trainer, config: Config) -> None:
        self.net = net
        self.trainer = trainer
        self.config = config

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
        # the states hold the optimizer with its schedule; a resumed job may train longer: this job's schedule
        self.trainer._optimizer.lr_scheduler = lr_scheduler(self.config)

    def save_gluon(self, path: Path) -> None:
        save_params(self.net, path)

    def best_to_gluon(self, best: Path, path: Path) -> None:
        copy_file(best, path)  # model.params is a GluonCV file already
