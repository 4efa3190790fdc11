"""Label maps: from the pixel values stored in the PNG masks to training class ids.

The `label_map` channel may hold `train_label_map.json` and `validation_label_map.json`:
`{"scale": 3}` means class = pixel // 3; `{"map": {"0": 5, "1": 0}}` maps class id -> pixel value.
Without a file, class = pixel. 255 is always "ignore" unless a map names it. A label map is turned into a
256-entry lookup table once; any pixel that maps to no class is a data error naming the file and values.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semseg.contract.errors import ClientError

log = logging.getLogger(__name__)

IGNORE = 255
_INVALID = -1


@dataclass(frozen=True)
class LabelMap:
    """A pixel-value -> class-id lookup table; IGNORE stays IGNORE."""

    table: np.ndarray  # (256,) int16, _INVALID where a pixel value is not a class
    description: str

    def apply(self, mask: np.ndarray, source: Path | str) -> np.ndarray:
        """Map a uint8 mask to class ids (uint8); ClientError naming `source` on unknown values."""
        mapped = self.table[mask]
        if (mapped == _INVALID).any():
            bad = np.unique(mask[mapped == _INVALID])
            valid = np.flatnonzero(self.table != _INVALID)
            raise ClientError(
                f"Annotation {source} has pixel values {_short(bad)} that are not classes under the label "
                f"map ({self.description}); valid pixel values are {_short(valid)} (255 = ignore). "
                "Fix the mask, num_classes, or the label_map channel."
            )
        return mapped.astype(np.uint8)


def identity(num_classes: int) -> LabelMap:
    return scale_map(1, num_classes)


def scale_map(scale: int, num_classes: int) -> LabelMap:
    table = np.arange(256, dtype=np.int16) // scale
    table[table >= num_classes] = _INVALID
    table[IGNORE] = IGNORE
    return LabelMap(table, f"scale={scale}" if scale != 1 else f"pixel value = class id, {num_classes} classes")


def explicit_map(mapping: dict[int, int], num_classes: int) -> LabelMap:
    table = np.full(256, _INVALID, dtype=np.int16)
    table[IGNORE] = IGNORE
    for class_id, pixel in mapping.items():
        table[pixel] = class_id
    return LabelMap(table, f"map of {len(mapping)} classes")


def load_label_map(channel: Path | None, split: str, num_classes: int) -> LabelMap:
    """The label map of `split` ("train" or "validation"); validation falls back to the train map."""
    if channel is None:
        return identity(num_classes)
    for name in (f"{split}_label_map.json", "train_label_map.json"):
        path = channel / name
        if path.is_file():
            if name != f"{split}_label_map.json":
                log.info("No %s_label_map.json: using %s for %s too", split, path, split)
            label_map = parse_label_map(path, num_classes)
            log.info("Label map for %s: %s (%s)", split, label_map.description, path)
            return label_map
    log.warning("Channel label_map has no %s_label_map.json: pixel value = class id for %s", split, split)
    return identity(num_classes)


def parse_label_map(path: Path, num_classes: int) -> LabelMap:
    try:
        content: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClientError(f"Label map {path} is not valid JSON ({exc})") from None
    if not isinstance(content, dict) or not ({"scale", "map"} & set(content)):
        raise ClientError(f'Label map {path} must be a JSON object with "scale" or "map", e.g. {{"scale": 1}}')
    if "map" in content:
        return explicit_map(_parse_map(content["map"], path, num_classes), num_classes)
    return scale_map(_parse_scale(content["scale"], path), num_classes)


def _parse_scale(raw: Any, path: Path) -> int:
    try:
        scale = int(str(raw).strip())
    except ValueError:
        scale = 0
    if scale < 1 or scale > 255:
        raise ClientError(f'Label map {path}: "scale" must be an integer from 1 to 255, got {raw!r}')
    return scale


def _parse_map(raw: Any, path: Path, num_classes: int) -> dict[int, int]:
    if not isinstance(raw, dict) or not raw:
        raise ClientError(f'Label map {path}: "map" must be a non-empty object {{"class id": pixel value}}')
    mapping: dict[int, int] = {}
    for key, value in raw.items():
        try:
            class_id, pixel = int(str(key)), int(str(value))
        except ValueError:
            raise ClientError(f'Label map {path}: entry "{key}": {value!r} is not an integer pair') from None
        if not 0 <= class_id < num_classes:
            raise ClientError(
                f"Label map {path}: class id {class_id} is out of range for num_classes={num_classes} "
                f"(0 to {num_classes - 1})"
            )
        if not 0 <= pixel <= 255:
            raise ClientError(f"Label map {path}: pixel value {pixel} of class {class_id} is not 0 to 255")
        if pixel in mapping.values():
            raise ClientError(f"Label map {path}: pixel value {pixel} is mapped to two classes")
        mapping[class_id] = pixel
    return mapping


def _short(values: np.ndarray, limit: int = 12) -> str:
    items = [str(int(v)) for v in values[:limit]]
    return "[" + ", ".join(items) + (", ..." if len(values) > limit else "") + "]"
