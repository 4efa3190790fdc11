"""Find the image/mask pairs of a split in its two channels.

Images (JPEG or PNG) in `<split>`, masks (PNG) in `<split>_annotation`, paired by relative path without
extension, else by file stem when that is unique. Two files whose paths differ only in the extension (a.jpg and
a.png) are one sample: the first by name is used, the other skipped with a counted warning naming both.
Subfolders are walked. Files that are not images are skipped with a warning; unpaired files are counted and
skipped. Each pair's headers are read (not the pixels; semseg.data.images.probe) so that a mask of the wrong mode
or size fails now, naming the file, not hours into training.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from semseg.contract.errors import ClientError
from semseg.data.images import MAX_PIXELS, MIN_SIDE, BadImage, check_mask, probe

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_SUFFIXES = (".png",)
_SHOWN = 5  # how many file names a warning lists
_UNREADABLE = "unreadable, empty or truncated image files"


@dataclass(frozen=True)
class Pair:
    image: Path
    mask: Path
    height: int
    width: int


def find_pairs(image_dir: Path, mask_dir: Path) -> list[Pair]:
    """All usable pairs of a split, sorted by image path; ClientError if there are none. A job lists each split
    once (semseg.data.pipeline.list_channels)."""
    images = _list_files(image_dir, IMAGE_SUFFIXES)
    masks = _list_files(mask_dir, MASK_SUFFIXES)
    matched = _match(images, masks)
    _warn_unpaired(image_dir, "images without a mask", [images[k] for k in images if k not in matched])
    used_masks = set(matched.values())
    _warn_unpaired(mask_dir, "masks without an image", [m for m in masks.values() if m not in used_masks])
    pairs = []
    skipped: dict[str, list[Path]] = defaultdict(list)
    for key in sorted(matched, key=lambda k: str(images[k])):
        pair = _probe(images[key], matched[key], skipped)
        if pair is not None:
            pairs.append(pair)
    for what, files in skipped.items():
        _warn_unpaired(image_dir, what, files)
    if not pairs:
        reasons = "".join(f", {len(files)} {what}" for what, files in skipped.items())
        raise ClientError(
            f"Channel {image_dir.name!r} has no usable image/annotation pairs: {len(images)} image(s) in "
            f"{image_dir}, {len(masks)} PNG mask(s) in {mask_dir}{reasons}. Pair each image (JPEG or PNG) "
            "with a PNG mask of the same file name, e.g. 0001.jpg with 0001.png."
        )
    log.info("Channel %s: %d image/annotation pairs", image_dir.name, len(pairs))
    return pairs


def _list_files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Relative path without suffix -> file, for files with one of `suffixes`; warns about the rest."""
    found: dict[str, Path] = {}
    skipped: list[Path] = []
    outside: list[Path] = []
    twins: list[str] = []
    real_folder = folder.resolve()
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(root) / name
            if name.startswith(".") or not path.is_file():
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(real_folder):
                outside.append(path)
                continue
            if path.suffix.lower() not in suffixes:
                skipped.append(path)
                continue
            key = str(path.relative_to(folder).with_suffix(""))
            if key in found:  # a.jpg and a.png: the first by name is used, the other skipped
                twins.append(f"{path} (uses {found[key].name})")
                continue
            found[key] = path
    _warn_unpaired(folder, "symbolic links that point out of the channel", outside)
    if twins:
        log.warning(
            "Channel %s: skipping %d file(s) whose name differs from another's only in the extension (the first "
            "by name is used), e.g. %s",
            folder.name,
            len(twins),
            ", ".join(twins[:_SHOWN]),
        )
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


def _probe(image: Path, mask: Path, skipped: dict[str, list[Path]]) -> Pair | None:
    """The pair, or None (recorded in `skipped`) when the image cannot be used; ClientError for a bad mask."""
    try:
        info = probe(image)
    except BadImage as exc:
        too_big = f"images smaller than {MIN_SIDE} or larger than {MAX_PIXELS:,} pixels"
        skipped[
            too_big if exc.kind in ("too_small", "too_large") else "unreadable, empty or truncated image files"
        ].append(image)
        return None
    try:
        mask_info = probe(mask, sized=False)
    except BadImage as exc:
        raise ClientError(f"Annotation {mask} cannot be read as a PNG image ({exc}). Replace or remove it.") from None
    try:
        check_mask(mask_info)
    except BadImage:
        raise ClientError(
            f"Annotation {mask} has image mode {mask_info.mode}; annotations must be single-channel 8-bit PNGs "
            "(grayscale 'L' or palette 'P') whose pixel values are class ids."
        ) from None
    if (mask_info.width, mask_info.height) != (info.width, info.height):
        raise ClientError(
            f"Annotation {mask} is {mask_info.width}x{mask_info.height} but its image {image} is "
            f"{info.width}x{info.height}; a mask must have the same width and height as its image."
        )
    return Pair(image=image, mask=mask, width=info.width, height=info.height)
