"""The names of the files a job leaves in /opt/ml/model, and the one way this project writes a file.

Every file is written to a temporary name beside its target and renamed onto it, so a stop or a crash
never leaves a half-written artifact, checkpoint or failure file. Pure standard library: the CLI uses it
before MXNet is loaded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

FINAL_PARAMS = "model_algo-1"  # Gluon parameters at the end of training
BEST_PARAMS = "model_best.params"  # Gluon parameters of the best validation mIOU (what hosting loads)
HYPERPARAMS = "hyperparams.json"  # the final configuration
EXPORT_PREFIX = "model"  # model-symbol.json + model-0000.params
WEIGHT_FILES = (BEST_PARAMS, FINAL_PARAMS)  # which weights of a model folder to load, in order of preference


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp)` with a temporary path beside `path`, then rename it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", errors="backslashreplace"))


def copy_file(source: Path, target: Path) -> None:
    atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))
