"""Checkpoints for managed spot training and restarts, in the job's checkpoint folder.

Layout (SageMaker syncs the folder with S3):
    epoch-0007/ model.params, trainer.states, meta.json    the newest complete epoch (older ones removed)
    best.params                                            weights of the best validation mIOU so far
Each epoch folder is written as `.epoch-0007.tmp` and renamed when complete, and meta.json (written last)
lists the sizes of the other files, so a folder that is half-written, truncated or from another
configuration is recognised, reported and skipped. Resuming re-creates the same run: same weights,
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
from typing import Any

import mxnet as mx
from mxnet import gluon

from semseg.early_stopping import EarlyStopping
from semseg.files import copy_file
from semseg.model import load_weights

log = logging.getLogger(__name__)

FORMAT = 1
BEST = "best.params"
_FILES = ("model.params", "trainer.states")


@dataclass(frozen=True)
class Resume:
    next_epoch: int
    early_stopping: EarlyStopping
    best_params: Path | None


class CheckpointStore:
    def __init__(self, folder: Path, fingerprint: dict[str, str]) -> None:
        self.folder = folder
        self.fingerprint = fingerprint

    def save(
        self, epoch: int, net: gluon.Block, trainer: gluon.Trainer, early_stopping: EarlyStopping, is_best: bool
    ) -> Path:
        """Write the checkpoint of a completed epoch; keep only it and best.params."""
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"epoch-{epoch:04d}"
        tmp = self.folder / f".{final.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        net.save_parameters(str(tmp / "model.params"))
        trainer.save_states(str(tmp / "trainer.states"))
        if is_best:
            copy_file(tmp / "model.params", self.folder / BEST)
        meta = {
            "format": FORMAT,
            "epoch": epoch,
            "fingerprint": self.fingerprint,
            "early_stopping": early_stopping.to_dict(),
            "sizes": {name: (tmp / name).stat().st_size for name in _FILES},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in self.folder.glob("epoch-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def restore(self, net: gluon.Block, trainer: gluon.Trainer) -> Resume | None:
        """Load the newest valid checkpoint into `net` and `trainer`; None when there is none."""
        if not self.folder.is_dir():
            return None
        for candidate in sorted(self.folder.glob("epoch-*"), reverse=True):
            try:
                meta = self._validate(candidate, net)
            except (OSError, ValueError, KeyError, TypeError, mx.MXNetError) as exc:
                log.warning("Skipping checkpoint %s: %s", candidate, str(exc).splitlines()[0] if str(exc) else exc)
                continue
            load_weights(net, candidate / "model.params", _contexts(net), f"checkpoint {candidate}")
            trainer.load_states(str(candidate / "trainer.states"))
            best = self.folder / BEST
            log.info("Resuming from checkpoint %s (epoch %d done)", candidate, meta["epoch"])
            return Resume(
                next_epoch=int(meta["epoch"]) + 1,
                early_stopping=EarlyStopping.from_dict(meta["early_stopping"]),
                best_params=best if best.is_file() else None,
            )
        return None

    def _validate(self, folder: Path, net: gluon.Block) -> dict[str, Any]:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"unknown checkpoint format {meta.get('format')!r}")
        if meta.get("fingerprint") != self.fingerprint:
            changed = sorted(
                k
                for k in set(self.fingerprint) | set(meta.get("fingerprint", {}))
                if self.fingerprint.get(k) != meta.get("fingerprint", {}).get(k)
            )
            raise ValueError(f"made with other hyperparameters ({', '.join(changed)})")
        for name, size in meta["sizes"].items():
            if (folder / name).stat().st_size != size:
                raise ValueError(f"{name} is {(folder / name).stat().st_size} bytes, expected {size}")
        saved = mx.nd.load(str(folder / "model.params"))
        params = net._collect_params_with_prefix()
        if set(saved) != set(params) or any(saved[k].shape != params[k].shape for k in params):
            raise ValueError("its weights do not fit this network")
        return dict(meta)


def _contexts(net: gluon.Block) -> list[mx.Context]:
    return list(next(iter(net.collect_params().values())).list_ctx())
