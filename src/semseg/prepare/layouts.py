"""The layouts `semseg-prepare` reads, each as a Plan: the class names, the samples (an image, its label and the
split it belongs to, where the source has one) and the rule that turns a label into class indices:

- `voc`: VOC2012's palette PNGs: the palette index is the class (21), 255 (the border) stays ignored; the split of
  ImageSets/Segmentation/{train,val}.txt.
- `ade20k`: ADEChallengeData2016: 0 ("other") -> 255, k -> k-1 (150 classes; their names from objectInfo150 where
  the folder has it); images/ and annotations/ {training,validation}.
- `cityscapes`: gtFine's *_labelIds.png: the 19 train ids of Cityscapes' own table, every other id 255.
- `coco`: an instances or stuff JSON (semseg.prepare.coco): category ids -> 0..N-1 in ascending id order.
- `colors`: RGB masks and a colour table: exact colours, the ignored ones 255, any other an error.
- `folders`: index masks already, checked against the number of classes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semseg.contract.errors import ClientError
from semseg.data.labels import IGNORE
from semseg.prepare.problems import EMPTY, NO_IMAGE, NO_MASK, Problem

IMAGES = (".jpg", ".jpeg", ".png")
INVALID = -1  # a value of a rule's table that is no class and not ignored: an error
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
# Cityscapes' labels.py: label id -> train id for the 19 classes evaluated; every other id is ignored
CITYSCAPES = {
    7: "road", 8: "sidewalk", 11: "building", 12: "wall", 13: "fence", 17: "pole", 19: "traffic light",
    20: "traffic sign", 21: "vegetation", 22: "terrain", 23: "sky", 24: "person", 25: "rider", 26: "car",
    27: "truck", 28: "bus", 31: "train", 32: "motorcycle", 33: "bicycle",
}  # fmt: skip
ADE20K_CLASSES = 150


@dataclass(frozen=True)
class Sample:
    split: str  # "train", "validation", or "" where the source has no split (semseg.prepare.cli splits)
    name: str  # the output files' stem
    image: Path
    label: Path | None  # the mask file (None: COCO's annotations, by `key`)
    key: int = 0


@dataclass(frozen=True)
class Rule:
    """How a label becomes class indices: `table` maps a mask's values (0..255) to a class, IGNORE or INVALID;
    `colours` (RGB masks) maps r<<16|g<<8|b to a class or IGNORE; `coco` draws from annotations."""

    kind: str  # "index", "colours" or "coco"
    table: np.ndarray | None = None
    colours: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    classes: tuple[str, ...]
    samples: list[Sample]
    rule: Rule
    problems: list[Problem]


def index_table(classes: int, shift: int = 0, zero_ignored: bool = False) -> np.ndarray:
    """Values below `classes` (+ shift) are classes (minus `shift`), 255 is ignored, the rest INVALID."""
    table = np.full(256, INVALID, np.int16)
    table[shift : classes + shift] = np.arange(classes)
    table[IGNORE] = IGNORE
    if zero_ignored:
        table[0] = IGNORE
    return table


def pair(
    images: Path, masks: Path, suffixes: tuple[str, ...] = (".png",)
) -> tuple[list[tuple[Path, Path]], list[Problem]]:
    """Images and masks of the same stem (relative path without suffix), and the unpaired ones as problems."""
    found = {_key(p, images): p for p in _files(images, IMAGES)}
    labels = {_key(p, masks): p for p in _files(masks, suffixes)}
    problems = [Problem(NO_MASK, str(found[k])) for k in sorted(found.keys() - labels.keys())]
    problems += [Problem(NO_IMAGE, str(labels[k])) for k in sorted(labels.keys() - found.keys())]
    return [(found[k], labels[k]) for k in sorted(found.keys() & labels.keys())], problems


def voc(root: Path) -> Plan:
    base = _first_with(root, ("VOCdevkit/VOC2012", "VOC2012", "."), "JPEGImages")
    samples, problems = [], []
    for split, listing in (("train", "train.txt"), ("validation", "val.txt")):
        path = base / "ImageSets" / "Segmentation" / listing
        if not path.is_file():
            raise ClientError(f"{path} is missing: VOC2012's split lists (ImageSets/Segmentation) are needed")
        for name in path.read_text().split():
            image, label = base / "JPEGImages" / f"{name}.jpg", base / "SegmentationClass" / f"{name}.png"
            if not image.is_file():
                problems.append(Problem(NO_MASK if not label.is_file() else NO_IMAGE, str(image), "listed, not there"))
            elif not label.is_file():
                problems.append(Problem(NO_MASK, str(image)))
            else:
                samples.append(Sample(split, name, image, label))
    return Plan(VOC_CLASSES, samples, Rule("index", index_table(len(VOC_CLASSES))), problems)


def ade20k(root: Path) -> Plan:
    base = _first_with(root, ("ADEChallengeData2016", "."), "annotations")
    samples, problems = [], []
    for split, folder in (("train", "training"), ("validation", "validation")):
        pairs, unpaired = pair(base / "images" / folder, base / "annotations" / folder)
        samples += [Sample(split, image.stem, image, label) for image, label in pairs]
        problems += unpaired
    rule = Rule("index", index_table(ADE20K_CLASSES, shift=1, zero_ignored=True))
    return Plan(_ade20k_names(base), samples, rule, problems)


def cityscapes(root: Path) -> Plan:
    samples, problems = [], []
    for split, folder in (("train", "train"), ("validation", "val")):
        images = {
            p.name.removesuffix("_leftImg8bit.png"): p
            for p in (root / "leftImg8bit" / folder).rglob("*_leftImg8bit.png")
        }
        labels = {
            p.name.removesuffix("_gtFine_labelIds.png"): p
            for p in (root / "gtFine" / folder).rglob("*_gtFine_labelIds.png")
        }
        problems += [Problem(NO_MASK, str(images[k])) for k in sorted(images.keys() - labels.keys())]
        problems += [Problem(NO_IMAGE, str(labels[k])) for k in sorted(labels.keys() - images.keys())]
        samples += [Sample(split, k, images[k], labels[k]) for k in sorted(images.keys() & labels.keys())]
    table = np.full(256, IGNORE, np.int16)  # every id that is no train class is ignored, none is an error
    for train_id, label_id in enumerate(sorted(CITYSCAPES)):
        table[label_id] = train_id
    return Plan(tuple(CITYSCAPES[k] for k in sorted(CITYSCAPES)), samples, Rule("index", table), problems)


def colors(images: Path, masks: Path, table: Path, ignored: Iterable[tuple[int, int, int]]) -> Plan:
    try:
        content = json.loads(table.read_text())
        named = {str(name): tuple(int(v) for v in rgb) for name, rgb in content.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise ClientError(f"--colors {table}: a JSON object of class name -> [r, g, b] is needed ({exc})") from None
    if not named or any(len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb) for rgb in named.values()):
        raise ClientError(f"--colors {table}: each class needs one colour [r, g, b] of 0..255")
    colours = {_packed(rgb): index for index, rgb in enumerate(named.values())}
    colours |= {_packed(rgb): IGNORE for rgb in ignored}
    pairs, problems = pair(images, masks)
    samples = [Sample("", image.stem, image, label) for image, label in pairs]
    return Plan(tuple(named), samples, Rule("colours", colours=colours), problems)


def folders(images: Path, masks: Path, num_classes: int) -> Plan:
    pairs, problems = pair(images, masks)
    samples = [Sample("", image.stem, image, label) for image, label in pairs]
    names = tuple(f"class {k}" for k in range(num_classes))
    return Plan(names, samples, Rule("index", index_table(num_classes)), problems)


def empty_splits(samples: list[Sample]) -> list[Problem]:
    return [Problem(EMPTY, split) for split in ("train", "validation") if not any(s.split == split for s in samples)]


def _by_stem(folder: Path, ending: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise ClientError(f"{folder} is not a folder: Cityscapes' leftImg8bit/ and gtFine/ (train, val) are needed")
    return {p.name.removesuffix(ending): p for p in folder.rglob(f"*{ending}")}


def _packed(rgb: Iterable[int]) -> int:
    r, g, b = rgb
    return (r << 16) | (g << 8) | b


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        raise ClientError(f"{folder} is not a folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def _key(path: Path, folder: Path) -> str:
    return str(path.relative_to(folder).with_suffix(""))


def _first_with(root: Path, candidates: tuple[str, ...], marker: str) -> Path:
    for candidate in candidates:
        if (root / candidate / marker).is_dir():
            return root / candidate
    raise ClientError(f"{root} holds no {marker}/ folder (looked in {', '.join(str(root / c) for c in candidates)})")


def _ade20k_names(base: Path) -> tuple[str, ...]:
    """The 150 names of objectInfo150.txt (tab-separated, the name last) or .csv, where the folder has one."""
    for name in ("objectInfo150.txt", "objectInfo150.csv"):
        path = base / name
        if path.is_file():
            rows = [line.replace(",", "\t").split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
            names = tuple(row[-1].strip().split(";")[0] for row in rows)
            if len(names) == ADE20K_CLASSES:
                return names
    return tuple(f"class {k}" for k in range(1, ADE20K_CLASSES + 1))
