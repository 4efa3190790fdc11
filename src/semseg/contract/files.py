"""The names of the files a job leaves in /opt/ml/model (and evaluation.json in output/data), and the one way
this project writes a file.

Every file is written to a temporary name beside its target, flushed to the disk (fsync), and renamed onto it,
and the folder's entry is flushed too, so a stop, a crash or a power loss leaves the old file or the new one,
never a half-written artifact, checkpoint or failure file. A write that fails removes its temporary file and leaves
the previous complete file in place; one that fails because its volume is full or read-only raises VolumeError,
which says so, for the caller to decide what that means (semseg.fit.disk). Pure standard library: the CLI uses it
before MXNet is loaded.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

FINAL_PARAMS = "model_algo-1"  # Gluon parameters at the end of training
BEST_PARAMS = "model_best.params"  # Gluon parameters of the best validation mIOU (what hosting loads)
HYPERPARAMS = "hyperparams.json"  # the final configuration
SYMBOL_PREFIX = "model"  # model-symbol.json + model-0000.params: the MXNet symbol file of the best weights
ONNX_FP32 = "model.onnx"  # the best weights as an ONNX graph that takes uint8 images (semseg.export)
ONNX_INT8 = "model-int8.onnx"  # its INT8 version, kept only where it passed the accuracy gate
PREVIOUS = "previous-"  # what an earlier job left in a reused folder, moved aside: previous-<UTC time>/
EVALUATION = "evaluation.json"  # in output/data: the best epoch's validation and the INT8 gate (semseg.outputs)
WEIGHT_FILES = (BEST_PARAMS, FINAL_PARAMS)  # which weights of a model folder to load, in order of preference


FULL_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
READ_ONLY_ERRORS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
LOW_FREE_BYTES = 2**20  # a write that failed (MXNet: "FileStream.Write incomplete") with less than this free: full
MB = 1e6


class VolumeError(OSError):
    """`path` could not be written: its volume is full (`read_only` False) or read-only; `free` bytes are free
    there now (after the partial file was removed)."""

    def __init__(self, path: Path, read_only: bool, free: int) -> None:
        self.path, self.read_only, self.free = path, read_only, free
        state = "is read-only" if read_only else f"is full ({free / MB:.0f} MB free)"
        super().__init__(errno.EROFS if read_only else errno.ENOSPC, f"{path} cannot be written: {path.parent} {state}")


def existing(folder: Path) -> Path:
    """`folder`, or its nearest parent that exists (on the same volume, where it will be made)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def free_bytes(folder: Path) -> int:
    """The bytes free to this process in `folder`'s volume."""
    return shutil.disk_usage(existing(folder)).free


def volume_problem(folder: Path, exc: BaseException) -> str | None:
    """Why a write into `folder` failed: "full", "read-only", or None for another cause. Frameworks report a full
    disk in their own words (MXNet's incomplete FileStream.Write), so the volume is asked too."""
    code = getattr(exc, "errno", None)
    if code in FULL_ERRORS:
        return "full"
    if code in READ_ONLY_ERRORS or (folder.exists() and not os.access(folder, os.W_OK)):
        return "read-only"
    try:
        return "full" if free_bytes(folder) < LOW_FREE_BYTES else None
    except OSError:
        return None


@contextmanager
def no_partial(target: Path, *partial: Path) -> Iterator[None]:
    """Remove the `partial` files or folders when the block fails (also on a second stop signal), and raise
    VolumeError when it failed because `target`'s volume is full or read-only."""
    try:
        yield
    except BaseException as exc:
        # asked before the partial files are removed (they fill the volume); not for a stop signal's exception
        problem = volume_problem(target.parent, exc) if isinstance(exc, Exception) else None
        for path in partial:
            discard(path)
        if problem is None or isinstance(exc, VolumeError):
            raise
        raise VolumeError(target, problem == "read-only", free_bytes(target.parent)) from exc


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp)` with a temporary path beside `path`, flush it to the disk, then rename it onto `path`. If
    anything fails the temporary file is removed (`path` stays as it was), and VolumeError says when the volume
    is full or read-only."""
    tmp = path.with_name(f".{path.name}.tmp")
    with no_partial(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        fsync(tmp)
        os.replace(tmp, path)
    fsync(path.parent)


def discard(path: Path) -> None:
    """Remove a partial file or folder, whatever it is; never fails."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


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


def link_or_copy(source: Path, target: Path) -> None:
    """`target` the same file as `source` (a hard link: no second copy; `source` must never be rewritten), or a
    copy where the filesystem refuses links; atomic either way."""

    def link(tmp: Path) -> None:
        tmp.unlink(missing_ok=True)  # a crash's leftover
        try:
            os.link(source, tmp)
        except OSError as exc:
            if exc.errno in FULL_ERRORS or exc.errno == errno.EROFS:
                raise
            shutil.copyfile(source, tmp)

    atomic_write(target, link)


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
