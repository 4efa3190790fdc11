"""One sample into the channels, in a worker process: the image copied byte for byte where it is a whole JPEG
already (its header read, its end-of-image marker checked: no pixel decoded), else decoded and encoded once at the
stated quality; the label turned into class indices by its layout's rule and written as an
8-bit single-channel PNG; the class pixel counts for the summary, and the problems found. A worker holds one
image at a time; the pool of every core streams the samples through (semseg.prepare.cli)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from semseg.prepare.coco import Drawing
from semseg.prepare.layouts import INVALID, Rule, Sample
from semseg.prepare.problems import COLOUR, SIZES, UNREADABLE, VALUE, Problem


@dataclass(frozen=True)
class Job:
    rule: Rule
    out: Path  # the temporary folder that becomes OUT
    quality: int
    drawing: Drawing | None = None


@dataclass
class Done:
    split: str
    counts: np.ndarray  # (256,) pixels per mask value
    problems: list[Problem] = field(default_factory=list)
    colours: dict[int, int] = field(default_factory=dict)  # unknown colour -> pixels (colour masks)


END_OF_IMAGE = b"\xff\xd9"
_JOB: Job | None = None  # the worker processes' job, set before they fork


def convert_all(samples: list[Sample], job: Job, workers: int) -> Iterator[Done]:
    """Every sample converted, on `workers` processes (forked: they share the job and its COCO index)."""
    global _JOB
    _JOB = job
    bar = tqdm(total=len(samples), unit="image", desc="prepare", disable=None)
    try:
        if workers <= 1:
            yield from _counted(map(convert_one, samples), bar)
            return
        with get_context("fork").Pool(workers) as pool:
            yield from _counted(pool.imap_unordered(convert_one, samples, chunksize=8), bar)
    finally:
        bar.close()
        _JOB = None


def _counted(done: Iterable[Done], bar: tqdm) -> Iterator[Done]:
    for item in done:
        bar.update()
        yield item


def convert_one(sample: Sample) -> Done:
    assert _JOB is not None
    return convert(sample, _JOB)


def convert(sample: Sample, job: Job) -> Done:
    """Write `sample`'s image and mask into `job.out`; what it counted and found."""
    done = Done(sample.split, np.zeros(256, np.int64))
    try:
        with Image.open(sample.image) as opened:
            size = opened.size
            picture = None  # a whole JPEG is copied as it is: its header is read, its pixels need no decoding
            if opened.format != "JPEG" or not _ends_whole(sample.image):
                opened.load()  # a truncated file fails here
                picture = opened.convert("RGB") if opened.format != "JPEG" else None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        done.problems.append(Problem(UNREADABLE, str(sample.image), f"{type(exc).__name__}: {exc}"))
        return done
    try:
        mask = _mask(sample, job, done)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        done.problems.append(Problem(UNREADABLE, str(sample.label), f"{type(exc).__name__}: {exc}"))
        return done
    if mask is None:
        return done
    if mask.shape != (size[1], size[0]):
        detail = f"image {size[0]}x{size[1]}, mask {mask.shape[1]}x{mask.shape[0]}"
        done.problems.append(Problem(SIZES, str(sample.label or sample.image), detail))
        return done
    image_path = job.out / sample.split / f"{sample.name}.jpg"
    mask_path = job.out / f"{sample.split}_annotation" / f"{sample.name}.png"
    if "/" in sample.name:  # the channel folders exist; a sample in a subfolder needs its own
        image_path.parent.mkdir(parents=True, exist_ok=True)
        mask_path.parent.mkdir(parents=True, exist_ok=True)
    if picture is None:
        shutil.copyfile(sample.image, image_path)
    else:
        picture.save(image_path, "JPEG", quality=job.quality)
    written = Image.fromarray(mask, "L")
    written.save(mask_path, "PNG")
    done.counts = np.asarray(written.histogram(), np.int64)  # PIL's histogram: the pixels of each value, in C
    return done


def _mask(sample: Sample, job: Job, done: Done) -> np.ndarray | None:
    """The sample's class indices, or None with its problems in `done`."""
    rule = job.rule
    if rule.kind == "coco":
        assert job.drawing is not None
        return job.drawing.mask(sample.key)
    assert sample.label is not None
    with Image.open(sample.label) as opened:
        opened.load()
        if rule.kind == "colours":
            return _from_colours(np.asarray(opened.convert("RGB")), rule, sample, done)
        if opened.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"mode {opened.mode}: an index mask is one channel of class values")
        values = np.asarray(opened).astype(np.int64)
    assert rule.table is not None
    out_of_range = values > 255
    mapped = rule.table[np.clip(values, 0, 255)]
    bad = np.unique(values[(mapped == INVALID) | out_of_range])
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:8])
        done.problems.append(Problem(VALUE, str(sample.label), f"values {shown}"))
        return None
    return mapped.astype(np.uint8)


def _from_colours(rgb: np.ndarray, rule: Rule, sample: Sample, done: Done) -> np.ndarray | None:
    packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    colours, inverse, counts = np.unique(packed.reshape(-1), return_inverse=True, return_counts=True)
    unknown = {int(c): int(n) for c, n in zip(colours, counts, strict=True) if int(c) not in rule.colours}
    if unknown:
        done.colours = unknown
        detail = ", ".join(f"{_rgb(c)}: {n} px" for c, n in sorted(unknown.items(), key=lambda x: -x[1])[:4])
        done.problems.append(Problem(COLOUR, str(sample.label), detail))
        return None
    lookup = np.array([rule.colours[int(c)] for c in colours], np.uint8)
    return lookup[inverse].reshape(packed.shape)


def _ends_whole(path: Path) -> bool:
    """Whether a JPEG ends with its end-of-image marker, as every whole one does (one that does not, truncated or
    with data after its image, is decoded to tell)."""
    with path.open("rb") as opened:
        opened.seek(-2, os.SEEK_END)
        return opened.read(2) == END_OF_IMAGE


def _rgb(packed: int) -> str:
    return f"({packed >> 16},{(packed >> 8) & 255},{packed & 255})"
