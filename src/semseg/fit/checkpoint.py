"""Checkpoints for managed spot training and restarts, in the job's checkpoint folder.

Layout (SageMaker syncs the folder with S3), the same for every engine; the files are the engine's own
(MXNet: model.params, trainer.states, best.params; PyTorch: model.pt, optimizer.pt, best.pt):
    epoch-0007/ <weights>, <optimizer state>, meta.json    the newest complete epoch (older ones removed)
    <best>                                                 weights of the best validation mIOU so far
    previous-<UTC time>/                                   what another job left here, moved aside, never deleted

A job never deletes a checkpoint it did not write: users reuse a checkpoint_s3_uri across jobs. A checkpoint
whose hyperparameters differ only in how long to train (RESUMABLE_CHANGES: epochs, early_stopping*) is resumed,
and training continues under the new values (the learning-rate schedule over the new total). A checkpoint of
other hyperparameters, of the other engine, or that cannot be read is reported with what differs and moved
aside into previous-<time>/ (with the best weights, when nothing is resumed) before this job writes its own.
Each epoch folder is written as `.epoch-0007.tmp`, flushed to the disk and renamed when complete (a write that
fails removes the partial folder, keeps the previous epoch and raises VolumeError when the volume is full), then
the best file is made a hard link to the epoch's weights when the epoch is the best (no second copy: an epoch folder
is never rewritten; a copy where links are refused; its meta.json says it is the best, and resume repeats the link,
so a crash between the two steps leaves no best file that disagrees with the epoch); meta.json (written last)
lists the sizes of the other files, so a folder that is half-written, truncated or from another
configuration or another engine is recognised, reported and skipped. Resuming re-creates the same run: same weights,
optimizer state and update count (so the same learning-rate schedule), same early-stopping state;
data order and augmentation depend only on the seed and the epoch.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from semseg.contract.files import fsync, fsync_tree, link_or_copy, move_aside, no_partial
from semseg.fit.early_stopping import EarlyStopping

log = logging.getLogger(__name__)

FORMAT = 1
RESUMABLE_CHANGES = frozenset(
    {"epochs", "early_stopping", "early_stopping_min_epochs", "early_stopping_patience", "early_stopping_tolerance"}
)


class EngineState(Protocol):
    """An engine's network and optimizer state as checkpoint files."""

    engine: str  # recorded in meta.json: a checkpoint of another engine is skipped
    files: tuple[str, str]  # (weights, optimizer state) as `save` writes them
    best_file: str  # the name of the best weights in the checkpoint folder

    def save(self, folder: Path) -> None: ...

    def check(self, folder: Path) -> None:
        """ValueError when the folder's weights do not fit the network."""

    def load(self, folder: Path) -> None: ...


@dataclass(frozen=True)
class Resume:
    next_epoch: int
    early_stopping: EarlyStopping
    best_params: Path | None
    outputs: dict[str, Any] | None = None  # what semseg.outputs.recorder keeps across a resume (history, best counts)


class CheckpointStore:
    def __init__(self, folder: Path, fingerprint: dict[str, str]) -> None:
        self.folder = folder
        self.fingerprint = fingerprint

    def save(
        self,
        epoch: int,
        state: EngineState,
        early_stopping: EarlyStopping,
        is_best: bool,
        outputs: dict[str, Any] | None = None,
    ) -> Path:
        """Write the checkpoint of a completed epoch; keep only it and the best weights. `outputs`: plain data
        of semseg.outputs.recorder for a resumed job's curves and evaluation.json (in meta.json)."""
        final = self.folder / f"epoch-{epoch:04d}"
        tmp = self.folder / f".{final.name}.tmp"
        with no_partial(final, tmp):
            self._write(tmp, epoch, state, early_stopping, is_best, outputs)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        fsync(self.folder)
        if is_best:  # after the epoch is final: a crash between the two is repaired by `restore`
            link_or_copy(final / state.files[0], self.folder / state.best_file)
        for old in self.folder.glob("epoch-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def _write(
        self,
        tmp: Path,
        epoch: int,
        state: EngineState,
        early_stopping: EarlyStopping,
        is_best: bool,
        outputs: dict[str, Any] | None,
    ) -> None:
        """The epoch's checkpoint in the folder `tmp`, flushed to the disk."""
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        state.save(tmp)
        meta = {
            "format": FORMAT,
            "engine": state.engine,
            "epoch": epoch,
            "fingerprint": self.fingerprint,
            "early_stopping": early_stopping.to_dict(),
            "sizes": {name: (tmp / name).stat().st_size for name in state.files},
            "is_best": is_best,  # resume then re-copies the best file from here: it may have missed the copy below
            "outputs": outputs,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        fsync_tree(tmp)

    def restore(self, state: EngineState, *, tidy: bool = True) -> Resume | None:
        """Load the newest valid checkpoint into `state`; None when there is none. `tidy` (the one host that writes
        checkpoints): move what is not this job's aside first (see the module's text)."""
        if not self.folder.is_dir():
            return None
        resumed: Resume | None = None
        foreign: list[Path] = []
        for candidate in sorted(self.folder.glob("epoch-*"), reverse=True):
            try:
                meta = self._validate(candidate, state, check_weights=resumed is None)
            except Exception as exc:  # noqa: BLE001  # any unreadable checkpoint is skipped, never fatal
                log.warning("Skipping checkpoint %s: %s", candidate, str(exc).splitlines()[0] if str(exc) else exc)
                foreign.append(candidate)
                continue
            if resumed is None:
                resumed = self._load(candidate, meta, state, tidy)
        if resumed is None:
            foreign += [path for path in self.folder.glob("best.*") if path.is_file()]
        if tidy and foreign:
            self._move_aside(foreign)
        return resumed

    def _changed(self, meta: dict[str, Any]) -> list[str]:
        """The hyperparameters whose values differ between this job and the checkpoint's."""
        theirs = meta.get("fingerprint", {})
        return sorted(k for k in set(self.fingerprint) | set(theirs) if self.fingerprint.get(k) != theirs.get(k))

    def _load(self, candidate: Path, meta: dict[str, Any], state: EngineState, tidy: bool) -> Resume:
        state.load(candidate)
        best = self.folder / state.best_file
        if meta.get("is_best") and tidy:  # the best weights are this epoch's: the link may not have happened
            link_or_copy(candidate / state.files[0], best)
        log.info("Resuming from checkpoint %s (epoch %d done)", candidate, meta["epoch"])
        changed = self._changed(meta)
        if changed:
            now = ", ".join(f"{key}={self.fingerprint.get(key, '(unset)')}" for key in changed)
            log.info("Training continues with %s (the checkpoint's job had other values)", now)
        return Resume(
            next_epoch=int(meta["epoch"]) + 1,
            early_stopping=EarlyStopping.from_dict(meta["early_stopping"]),
            best_params=best if best.is_file() else None,
            outputs=meta.get("outputs"),
        )

    def _move_aside(self, paths: list[Path]) -> None:
        """Keep another job's checkpoint files, out of this job's way, in previous-<UTC time>/."""
        target = move_aside(self.folder, paths)
        log.warning(
            "Moved %s aside to %s: they are not this job's checkpoint (nothing of them is deleted)",
            ", ".join(sorted(path.name for path in paths)),
            target,
        )

    def _validate(self, folder: Path, state: EngineState, *, check_weights: bool = True) -> dict[str, Any]:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"unknown checkpoint format {meta.get('format')!r}")
        engine = meta.get("engine", "mxnet")  # checkpoints from before the engine seam are MXNet's
        if engine != state.engine:
            raise ValueError(f"made by the {engine} engine; this job runs SEMSEG_ENGINE={state.engine}")
        theirs = meta.get("fingerprint", {})
        changed = sorted(k for k in set(self.fingerprint) | set(theirs) if self.fingerprint.get(k) != theirs.get(k))
        if set(changed) - RESUMABLE_CHANGES:
            raise ValueError(f"made with other hyperparameters ({', '.join(changed)})")
        if changed:
            log.info(
                "Checkpoint %s: resuming with changed %s",
                folder,
                ", ".join(f"{k}={self.fingerprint.get(k)}" for k in changed),
            )
        for name, size in meta["sizes"].items():
            if (folder / name).stat().st_size != size:
                raise ValueError(f"{name} is {(folder / name).stat().st_size} bytes, expected {size}")
        if check_weights:
            state.check(folder)
        return dict(meta)
