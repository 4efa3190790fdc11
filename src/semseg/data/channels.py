"""Find the image/mask pairs of a split in its two channels.

Images (JPEG or PNG) in `<split>`, masks (PNG) in `<split>_annotation`, paired by relative path without
extension, else by file stem when that is unique. Subfolders are walked. Files that are not images are
skipped with a warning; unpaired files are counted and skipped. Each pair's headers are read (not the
pixels) so that a mask of the wrong mode or size fails now, naming the file, not hours into training.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from semseg.errors import ClientError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_SUFFIXES = (".png",)
MASK_MODES = ("L", "P")
MAX_PIXELS = 64_000_000  # larger images would need tens of GB per batch; see README "Limits"
_SHOWN = 5  # how many file names a warning lists


@dataclass(frozen=True)
class Pair:
    image: Path
    mask: Path
    height: int
    width: int


def find_pairs(image_dir: Path, mask_dir: Path) -> list[Pair]:
    """All usable pairs of a split, sorted by image path; ClientError if there are none."""
    images = _list_files(image_dir, IMAGE_SUFFIXES)
    masks = _list_files(mask_dir, MASK_SUFFIXES)
    matched = _match(images, masks)
    _warn_unpaired(image_dir, "images without a mask", [images[k] for k in images if k not in matched])
    used_masks = set(matched.values())
    _warn_unpaired(mask_dir, "masks without an image", [m for m in masks.values() if m not in used_masks])
    pairs = []
    unreadable: list[Path] = []
    for key in sorted(matched, key=lambda k: str(images[k])):
        pair = _probe(images[key], matched[key], unreadable)
        if pair is not None:
            pairs.append(pair)
    _warn_unpaired(image_dir, "unreadable image files", unreadable)
    if not pairs:
        raise ClientError(
            f"Channel {image_dir.name!r} has no usable image/annotation pairs: {len(images)} image(s) in "
            f"{image_dir}, {len(masks)} PNG mask(s) in {mask_dir}. Pair each image (JPEG or PNG) with a PNG "
            "mask of the same file name, e.g. 0001.jpg with 0001.png."
        )
    log.info("Channel %s: %d image/annotation pairs", image_dir.name, len(pairs))
    return pairs


def _list_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Relative path without suffix -> file, for files with one of `suffixes`; warns about the rest."""
    found: dict[str, Path] = {}
    skipped: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if name.startswith(".") or not path.is_file():
                continue
            if path.suffix.lower() not in suffixes:
                skipped.append(path)
                continue
            found[str(path.relative_to(folder).with_suffix(""))] = path
    if skipped:
        log.warning(
            "Channel %s: skipping %d file(s) that are not %s images, e.g. %s is not readable image file",
            folder.name,
            len(skipped),
            "/".join(s.lstrip(".").upper() for s in suffixes),
            ", ".join(str(s) for s in skipped[:_SHOWN]),
        )
    return found


def _match(images: dict[str, Path], masks: dict[str, Path]) -> dict[str, Path]:
    matched = {key: masks[key] for key in images if key in masks}
    stems = Counter(Path(k).name for k in masks)
    by_stem = {Path(k).name: m for k, m in masks.items() if stems[Path(k).name] == 1}
    taken = set(matched.values())
    for key in images:
        if key in matched:
            continue
        mask = by_stem.get(Path(key).name)
        if mask is not None and mask not in taken:
            matched[key] = mask
            taken.add(mask)
    return matched


def _warn_unpaired(folder: Path, what: str, files: list[Path]) -> None:
    if files:
        log.warning(
            "Channel %s: skipping %d %s, e.g. %s",
            folder.name,
            len(files),
            what,
            ", ".join(str(f) for f in files[:_SHOWN]),
        )


def _probe(image: Path, mask: Path, unreadable: list[Path]) -> Pair | None:
    try:
        with Image.open(image) as img:
            size = img.size
    except (UnidentifiedImageError, OSError):
        unreadable.append(image)
        return None
    try:
        with Image.open(mask) as m:
            mask_mode, mask_size = m.mode, m.size
    except (UnidentifiedImageError, OSError) as exc:
        raise ClientError(f"Annotation {mask} cannot be read as a PNG image ({exc}). Replace or remove it.") from None
    if mask_mode not in MASK_MODES:
        raise ClientError(
            f"Annotation {mask} has image mode {mask_mode}; annotations must be single-channel 8-bit PNGs "
            "(grayscale 'L' or palette 'P') whose pixel values are class ids."
        )
    if mask_size != size:
        raise ClientError(
            f"Annotation {mask} is {mask_size[0]}x{mask_size[1]} but its image {image} is {size[0]}x{size[1]}; "
            "a mask must have the same width and height as its image."
        )
    if size[0] * size[1] > MAX_PIXELS or min(size) < 1:
        raise ClientError(
            f"Image {image} is {size[0]}x{size[1]} pixels; this algorithm accepts images of at most "
            f"{MAX_PIXELS:,} pixels. Downscale it (and its mask, with nearest-neighbour) or remove the pair."
        )
    return Pair(image=image, mask=mask, width=size[0], height=size[1])
