"""What a job writes to its volumes, estimated from the network and the optimizer before any data work (beside the
step's memory, semseg.fit.memory), and what a volume that cannot take it means, the same for both engines.

SageMaker puts the training data, /opt/ml/model, /opt/ml/output and /opt/ml/checkpoints on one ML storage volume
(30 GB unless the job sets VolumeSizeInGB). The model folder holds three parameter files at its fullest
(model_best.params, model_algo-1, model-0000.params: WEIGHT_BYTES each, about, with the atomic write's temporary
copy of one of them); a checkpoint holds the weights and the optimizer's state (OPTIMIZER_STATES copies of the
weights), and while an epoch's checkpoint is written the previous one is kept. WEIGHT_BYTES were measured as the
size of GluonCV's parameter file of each network (MXNet 1.9.1, 2026-12-05), BYTES_PER_CLASS from 2 and 150 classes.

- A model folder that cannot hold the model (at the start, or when a write fails later) ends the job with a
  ClientError that names the folder, what it needs and what is free, and what to change.
- A checkpoint that cannot be written is one error line for its epoch; training goes on (the previous complete
  checkpoint is kept) and the next epoch tries again. Only a checkpoint folder that cannot hold even one
  checkpoint is refused at the start.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.files import MB, VolumeError, existing, free_bytes

log = logging.getLogger(__name__)

# GluonCV parameter file of the network with its aux head, without the classes' part
WEIGHT_BYTES: dict[tuple[str, str], int] = {
    ("fcn", "resnet-50"): 141_958_620,
    ("fcn", "resnet-101"): 218_153_002,
    ("psp", "resnet-50"): 196_518_728,
    ("psp", "resnet-101"): 272_713_110,
    ("deeplab", "resnet-50"): 168_718_032,
    ("deeplab", "resnet-101"): 244_912_414,
    ("deeplabv3plus", "resnet-50"): 171_574_371,
    ("deeplabv3plus", "resnet-101"): 247_768_753,
    # DINOv2 (torch engine): 4 bytes per parameter of the network with 21 classes, counted (2026-12-06)
    ("linear", "dinov2-small"): 88_263_256,
    ("linear", "dinov2-base"): 346_395_736,
    ("fcn", "dinov2-small"): 89_561_560,
    ("fcn", "dinov2-base"): 351_646_552,
    ("psp", "dinov2-small"): 91_484_648,
    ("psp", "dinov2-base"): 359_326_568,
    ("deeplab", "dinov2-small"): 103_348_336,
    ("deeplab", "dinov2-base"): 372_845_680,
}
BYTES_PER_CLASS = 3_080
OPTIMIZER_STATES = {"sgd": 1, "nag": 1, "adam": 2, "rmsprop": 1, "adagrad": 1}  # per weight (sgd: with momentum)
MODEL_FILES = 3  # model_best.params, model_algo-1 and the symbol file at the end (or two of them and a write's copy)
ADVICE = (
    "Give the job a larger volume (VolumeSizeInGB in the training job's ResourceConfig; volume_size in SDK v2's "
    "Estimator, volume_size_in_gb in SDK v3's Compute), or use Pipe or FastFile input mode so that the training "
    "data does not take the volume."
)


@dataclass(frozen=True)
class Writes:
    """Bytes a job writes: one parameter file, the model folder at its fullest, one checkpoint."""

    weights: int
    model: int
    checkpoint: int


def estimate(config: Config) -> Writes:
    weights = WEIGHT_BYTES[(config.algorithm, config.backbone)] + BYTES_PER_CLASS * config.num_classes
    states = OPTIMIZER_STATES[config.optimizer]
    if config.optimizer == "sgd" and config.momentum == 0:
        states = 0
    return Writes(weights, MODEL_FILES * weights, (1 + states) * weights)


def check_space(config: Config, model_dir: Path, checkpoint_dir: Path | None) -> None:
    """ClientError, before any data work, when the model folder is read-only or clearly cannot hold the model,
    or the checkpoint folder cannot hold one checkpoint (both together where they share a volume)."""
    writes = estimate(config)
    _check_writable(model_dir)
    needs = [(model_dir, writes.model, "the model folder", "the model files")]
    if checkpoint_dir is not None:
        needs.append((checkpoint_dir, writes.checkpoint, "the checkpoint folder", "one checkpoint"))
        if _volume(checkpoint_dir) == _volume(model_dir):
            needs = [(model_dir, writes.model + writes.checkpoint, "the model and checkpoint folders",
                      f"the model files and one checkpoint ({checkpoint_dir} is on the same volume)")]  # fmt: skip
    for folder, needed, which, what in needs:
        free = free_bytes(folder)
        log.info("Disk: %s needs about %.0f MB for %s; %.0f MB free (estimate: semseg.fit.disk)",
                 folder, needed / MB, what, free / MB)  # fmt: skip
        if free < needed:
            raise ClientError(
                f"{which.capitalize()} {folder} has {free / MB:.0f} MB free, and {what} of {config.algorithm} "
                f"{config.backbone} with optimizer={config.optimizer} need about {needed / MB:.0f} MB. {ADVICE}"
            )


def model_folder_error(exc: VolumeError, config: Config, model_dir: Path) -> ClientError:
    """The ClientError for a model folder whose write failed: what it needs, what is free, what is kept."""
    kept = ", ".join(sorted(p.name for p in model_dir.iterdir() if not p.name.startswith("."))) or "nothing"
    if exc.read_only:
        return ClientError(
            f"The model folder {model_dir} is read-only: {exc.path.name} cannot be written. It must be writable "
            f"(SageMaker collects model.tar.gz from it; with docker run, mount it without :ro). Kept: {kept}."
        )
    needed = estimate(config).model
    return ClientError(
        f"The model folder {model_dir} is full: {exc.path.name} cannot be written. The model files need about "
        f"{needed / MB:.0f} MB and {exc.free / MB:.0f} MB are free. {ADVICE} Kept, whole: {kept}."
    )


def log_checkpoint_failure(epoch: int, exc: VolumeError, config: Config, folder: Path) -> None:
    """One error line for an epoch whose checkpoint could not be written; training goes on."""
    kept = sorted(p.name for p in folder.glob("epoch-*")) if folder.is_dir() else []
    previous = f"the previous checkpoint ({kept[-1]}) is kept" if kept else "no earlier checkpoint exists"
    state = "is read-only" if exc.read_only else "is full"
    checkpoint = estimate(config).checkpoint
    log.error(
        "Epoch %d: checkpoint not written: the checkpoint volume %s %s (a checkpoint needs about %.0f MB, %.0f MB "
        "while the previous one is kept; %.0f MB are free); %s. Training goes on; the next epoch tries again.",
        epoch, folder, state, checkpoint / MB, 2 * checkpoint / MB, exc.free / MB, previous,
    )  # fmt: skip


def _check_writable(folder: Path) -> None:
    probe = folder / ".semseg-write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ClientError(
            f"The model folder {folder} cannot be written ({exc.strerror or exc}). It must be writable (SageMaker "
            "collects model.tar.gz from it; with docker run, mount it without :ro)."
        ) from None


def _volume(folder: Path) -> int:
    return os.stat(existing(folder)).st_dev
