"""The loss's weight per class (hyperparameter class_weights), the same for every engine.

- unset: no weights (the managed algorithm's loss);
- a list: those numbers, one per class;
- `auto`: median-frequency balancing (Eigen and Fergus, 2015; SegNet) of the training masks' pixel counts:
  w_c = median(f) / f_c with f_c the class's share of the labelled pixels and the median over the classes that
  occur; clipped to [1/CLIP, CLIP] so that a class of a few pixels cannot dominate; a class absent from the
  counted masks gets the median's weight 1 (it has no pixels to weigh); then scaled to mean 1 over the classes.
  Several hosts sum their counts first, so all of them train with the same weights.

The loss is normalised by the batch's weighted labelled pixels (the engines' loss), so only the ratios of the
weights matter, and mean 1 is for reading. The weights used are logged per class and written, with the counts
they came from, to class_weights.json in the model folder: a rerun can pass its "hyperparameter" string.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from semseg.contract.config import Config
from semseg.contract.files import write_text
from semseg.contract.job import Job
from semseg.data.channels import Pair
from semseg.data.class_counts import ClassCounts, count_train_pixels
from semseg.distributed.part import Part

log = logging.getLogger(__name__)

CLIP = 10.0
COMPANION = "class_weights.json"
MIN_WEIGHT_SUM = 1e-6  # the loss's normaliser at least: a batch without weighted labelled pixels has the loss 0


def median_frequency(pixels: np.ndarray) -> np.ndarray:
    """(C,) float64 weights of (C,) pixel counts: see the module's docstring."""
    pixels = np.asarray(pixels, np.float64)
    present = pixels > 0
    weights = np.ones(len(pixels))
    if present.any():
        share = pixels / pixels.sum()
        weights[present] = np.clip(np.median(share[present]) / share[present], 1 / CLIP, CLIP)
    return weights / weights.mean()


def class_weights(job: Job, config: Config, seed: int, part: Part, pairs: list[Pair] | None) -> np.ndarray | None:
    """The job's (num_classes,) float32 weights, or None for the unweighted loss, counted in the train channel's
    `pairs` (as the job listed them; None in Pipe mode); logged by each host's first part, and written to the model
    folder's class_weights.json by the leader."""
    if config.class_weights is None:
        return None
    counts: ClassCounts | None = None
    if config.auto_class_weights:
        counts = count_train_pixels(job, config, seed, pairs)
        summed = part.exchange is not None and part.hosts > 1  # a host's parts count the same masks: its first's
        pixels = counts.pixels
        if part.exchange is not None and summed:
            mine = pixels if part.local_rank == 0 else np.zeros_like(pixels)
            pixels = part.exchange.sum_counts("classes", mine.astype(np.int64))
        counts = ClassCounts(pixels, counts.masks, counts.of, counts.seconds)
        weights = median_frequency(pixels)
        sample = "" if counts.masks == counts.of else f" (a seeded sample of {counts.of})"
        (log.info if part.reports else log.debug)(
            "class_weights=auto: median-frequency balancing of %d training masks%s, counted in %.2f s%s",
            counts.masks, sample, counts.seconds, " on this host, summed over the hosts" if summed else "",
        )  # fmt: skip
    else:
        assert isinstance(config.class_weights, tuple)
        weights = np.asarray(config.class_weights, np.float64)
    if part.reports:
        _log_weights(weights, counts)
    if part.leader:
        write_companion(job.paths.model_dir, weights, counts)
    return weights.astype(np.float32)


def pixel_weights(num_classes: int, weights: np.ndarray | None) -> np.ndarray:
    """(256,) float32: the loss weight of each label value, for the engines' losses: the class weights (1 for
    every class without them), 0 for the ignore label and the values above the classes."""
    table = np.zeros(256, np.float32)
    table[:num_classes] = 1.0 if weights is None else weights
    return table


def as_hyperparameter(weights: np.ndarray) -> str:
    return ",".join(f"{w:.6g}" for w in weights)


def write_companion(model_dir: Path, weights: np.ndarray, counts: ClassCounts | None) -> Path:
    content: dict[str, object] = {
        "class_weights": [float(f"{w:.6g}") for w in weights],
        "hyperparameter": as_hyperparameter(weights),
        "source": "auto" if counts is not None else "list",
    }
    if counts is not None:
        content.update(
            method=f"median-frequency balancing, clipped to [1/{CLIP:g}, {CLIP:g}], mean 1",
            pixels=[int(n) for n in counts.pixels],
            masks_counted=counts.masks,
            masks_in_channel=counts.of,
        )
    path = model_dir / COMPANION
    write_text(path, json.dumps(content, indent=2) + "\n")
    return path


def _log_weights(weights: np.ndarray, counts: ClassCounts | None) -> None:
    total = counts.pixels.sum() if counts is not None else 0
    for c, weight in enumerate(weights):
        share = f", {100 * counts.pixels[c] / max(total, 1):.3f}% of the labelled pixels" if counts else ""
        absent = " (absent from the counted masks)" if counts is not None and counts.pixels[c] == 0 else ""
        log.info("Class weight %d: %.4f%s%s", c, weight, share, absent)
