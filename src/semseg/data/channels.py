"""Find the image/mask pairs of a split in its two channels.

Images (JPEG or PNG) in `<split>`, masks (PNG) in `<split>_annotation`, paired by relative path without
extension, else by file stem when that is unique. Subfolders are walked. Files that are not images are
skipped with a warning; unpaired files are counted and skipped. Each pair's headers are read (not the
pixels) so that a mask of the wrong mode or size fails now, naming the file, not hours into training.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from semseg.contract.config import OUTPUT_STRIDE
from semseg.contract.errors import ClientError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_SUFFIXES = (".png",)
MASK_MODES = ("L", "P")
MAX_PIXELS = 64_000_000  # 8000 x 8000; larger ones need GBs per image in decoding and augmentation
MIN_SIDE = OUTPUT_STRIDE  # a smaller image has no feature map to speak of
_SHOWN = 5  # how many file names a warning lists
_TAIL = 1024  # how far from the end of a file its end marker may be
_END_MARKERS = {".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9", ".png": b"IEND"}


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
            found[str(path.relative_to(folder).with_suffix(""))] = path
    _warn_unpaired(folder, "symbolic links that point out of the channel", outside)
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


def _complete(path: Path) -> bool:
    """False for an empty file, or a JPEG/PNG whose end marker is missing (a truncated upload)."""
    marker = _END_MARKERS.get(path.suffix.lower())
    size = path.stat().st_size
    if size == 0:
        return False
    if marker is None:
        return True
    with open(path, "rb") as f:
        f.seek(max(0, size - _TAIL))
        return marker in f.read()


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height)) from the file header; raises OSError when it is no readable image."""
    try:
        with Image.open(path) as img:
            return img.mode, img.size
    except UnidentifiedImageError as exc:
        raise OSError(str(exc)) from None


def _probe(image: Path, mask: Path, skipped: dict[str, list[Path]]) -> Pair | None:
    """The pair, or None (recorded in `skipped`) when the image cannot be used; ClientError for a bad mask."""
    too_big = f"images smaller than {MIN_SIDE} or larger than {MAX_PIXELS:,} pixels"
    try:
        if not _complete(image):
            raise OSError("empty or truncated")
        _, size = _header(image)
    except Image.DecompressionBombError:
        skipped[too_big].append(image)
        return None
    except OSError:
        skipped["unreadable, empty or truncated image files"].append(image)
        return None
    if size[0] * size[1] > MAX_PIXELS or min(size) < MIN_SIDE:
        skipped[too_big].append(image)
        return None
    try:
        if not _complete(mask):
            raise OSError("the file is empty or truncated")
        mask_mode, mask_size = _header(mask)
    except (OSError, Image.DecompressionBombError) as exc:
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
    return Pair(image=image, mask=mask, width=size[0], height=size[1])
