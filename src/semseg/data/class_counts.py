"""Pixels per class in a job's training masks (after the label map; 255 ignored), for class_weights=auto.

Only the masks are decoded, and at most MAX_MASKS of them (a seeded sample, the same on every host and every
run of the same data): a few seconds at most, a small part of one epoch (benchmarks/RESULTS.md, "Imbalanced
data"). Pipe mode streams its masks with the images, so it has no count before training: a ClientError.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.job import Job
from semseg.data.channels import Pair
from semseg.data.dataset import read_mask
from semseg.data.labels import load_label_map

MAX_MASKS = 1000


@dataclass(frozen=True)
class ClassCounts:
    pixels: np.ndarray  # (num_classes,) int64 labelled pixels per class
    masks: int  # masks counted
    of: int  # masks in the channel
    seconds: float


def count_train_pixels(
    job: Job, config: Config, seed: int, pairs: list[Pair] | None, limit: int = MAX_MASKS
) -> ClassCounts:
    """Pixels per class in the train channel's masks, `pairs` as the job listed them (all of them, or a seeded
    sample of `limit`); None where the channel streams in Pipe mode (a ClientError)."""
    if "train" in job.pipes or pairs is None:
        raise ClientError(
            "class_weights=auto counts the pixels of the training masks before training, and channel 'train' is "
            "in Pipe mode, where the masks arrive only as a stream. Give class_weights as a list of num_classes "
            'numbers (e.g. the "class_weights" of class_weights.json in an earlier File-mode job\'s model), '
            "or use File or FastFile mode."
        )
    start = time.perf_counter()
    label_map = load_label_map(job.channel("label_map"), "train", config.num_classes)
    chosen = list(range(len(pairs)))
    if len(pairs) > limit:
        chosen = sorted(np.random.default_rng(seed).choice(len(pairs), limit, replace=False).tolist())
    counts = np.zeros(256, np.int64)
    for index in chosen:
        path = pairs[index].mask
        counts += np.bincount(label_map.apply(read_mask(path), path).reshape(-1), minlength=256)
    return ClassCounts(counts[: config.num_classes], len(chosen), len(pairs), time.perf_counter() - start)
