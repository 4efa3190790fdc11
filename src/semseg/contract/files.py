"""The names of the files a job leaves in /opt/ml/model, and the one way this project writes a file.

Every file is written to a temporary name beside its target, flushed to the disk (fsync), and renamed onto it,
and the folder's entry is flushed too, so a stop, a crash or a power loss leaves the old file or the new one,
never a half-written artifact, checkpoint or failure file. Pure standard library: the CLI uses it
before MXNet is loaded.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

FINAL_PARAMS = "model_algo-1"  # Gluon parameters at the end of training
BEST_PARAMS = "model_best.params"  # Gluon parameters of the best validation mIOU (what hosting loads)
HYPERPARAMS = "hyperparams.json"  # the final configuration
EXPORT_PREFIX = "model"  # model-symbol.json + model-0000.params
PREVIOUS = "previous-"  # what an earlier job left in a reused folder, moved aside: previous-<UTC time>/
WEIGHT_FILES = (BEST_PARAMS, FINAL_PARAMS)  # which weights of a model folder to load, in order of preference


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp)` with a temporary path beside `path`, flush it to the disk, then rename it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    fsync(tmp)
    os.replace(tmp, path)
    fsync(path.parent)


def fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file of a folder (not its subfolders), then the folder's entries."""
    for path in folder.iterdir():
        if path.is_file():
            fsync(path)
    fsync(folder)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8", errors="backslashreplace"))


def copy_file(source: Path, target: Path) -> None:
    atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))


def move_aside(folder: Path, paths: list[Path]) -> Path:
    """Move `paths` (in `folder`) into a new folder `folder`/previous-<UTC time>/ (nothing is deleted); return it."""
    stamp = time.strftime(f"{PREVIOUS}%Y%m%dT%H%M%SZ", time.gmtime())
    target = folder / stamp
    for n in range(1, 1000):  # two jobs within a second: previous-<time>-1, ...
        if not target.exists():
            break
        target = folder / f"{stamp}-{n}"
    target.mkdir()
    for path in paths:
        os.replace(path, target / path.name)
    fsync(target)
    fsync(folder)
    return target
