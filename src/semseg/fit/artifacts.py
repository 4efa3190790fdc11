"""What a job's training leaves in /opt/ml/model, and when, the same for every engine: hyperparams.json at the
start, model_best.params (the GluonCV file of the best validation mIOU) as soon as an epoch improves it, and at the
end (also after a stop request) model_algo-1 (the weights reached) and model_best.params when no epoch was
validated yet (the final weights). What is made of model_best.params after training (the symbol file, the ONNX
models) is the job's top's (semseg.training).

The engine writes the files (`Weights`: GluonCV's format, whatever the framework); every write is atomic
(semseg.contract.files), so a stop never leaves a half-written artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from semseg.contract.config import Config
from semseg.contract.files import BEST_PARAMS, FINAL_PARAMS, HYPERPARAMS, copy_file, write_text


class Weights(Protocol):
    """An engine's network weights as GluonCV files."""

    def save_gluon(self, path: Path) -> None:
        """The network's weights now, as a GluonCV parameter file at `path` (written atomically)."""

    def best_to_gluon(self, best: Path, path: Path) -> None:
        """A checkpoint's best weights file (the engine's own format) as a GluonCV parameter file at `path`."""


def write_hyperparams(config: Config, model_dir: Path) -> Path:
    path = model_dir / HYPERPARAMS
    write_text(path, json.dumps(config.to_hyperparameters(), indent=2, sort_keys=True) + "\n")
    return path


def keep_best(weights: Weights, model_dir: Path) -> None:
    """The network's weights are the best so far: model_best.params now."""
    weights.save_gluon(model_dir / BEST_PARAMS)


def restore_best(weights: Weights, best: Path, model_dir: Path) -> None:
    """A resumed job's best weights (the checkpoint's best file) become model_best.params."""
    weights.best_to_gluon(best, model_dir / BEST_PARAMS)


def finish(weights: Weights, model_dir: Path) -> None:
    """The artifacts of the end of training (also after a stop request): final weights, and best weights (the
    final ones when no epoch was validated yet)."""
    weights.save_gluon(model_dir / FINAL_PARAMS)
    best = model_dir / BEST_PARAMS
    if not best.exists():
        copy_file(model_dir / FINAL_PARAMS, best)
