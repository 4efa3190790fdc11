"""The File-mode data set: pairs -> decoded, mapped and transformed samples; plain Python, indexed by either
engine's DataLoader (semseg.engines.*.loader) with keys from a batch sampler (semseg.data.samplers)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semseg.contract.errors import ClientError
from semseg.data.channels import Pair
from semseg.data.images import BadImage, decode_image, decode_mask
from semseg.data.labels import LabelMap
from semseg.data.samplers import Key
from semseg.data.transforms import Transform


def read_image(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB (semseg.data.images). EXIF orientation is ignored, as it is for the mask."""
    try:
        return decode_image(path.read_bytes())
    except BadImage as exc:
        raise ClientError(
            f"Image {path} cannot be decoded (truncated or corrupt?): it {exc}. Replace or remove it."
        ) from None


def read_mask(path: Path) -> np.ndarray:
    """HxW uint8 pixel values of a grayscale or palette PNG (palette indices, not colours)."""
    try:
        return decode_mask(path.read_bytes())
    except BadImage as exc:
        raise ClientError(f"Annotation {path} cannot be decoded: it {exc}. Replace or remove it.") from None


def prepare(
    image: np.ndarray, mask: np.ndarray, transform: Transform, seed: int, image_name: str, mask_name: str
) -> tuple[np.ndarray, np.ndarray]:
    """The transformed, contiguous (image, class-id mask) of a decoded pair whose mask is already mapped."""
    if image.shape[:2] != mask.shape:
        raise ClientError(
            f"Annotation {mask_name} is {mask.shape[1]}x{mask.shape[0]} but its decoded image {image_name} "
            f"is {image.shape[1]}x{image.shape[0]}; they must have the same size."
        )
    image, mask = transform(image, mask, np.random.default_rng(seed))
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


class SegmentationDataset:
    """Pairs -> (image uint8 HxWx3, class-id mask uint8 HxW) after the label map and the transform."""

    def __init__(self, pairs: Sequence[Pair], label_map: LabelMap, transform: Transform) -> None:
        self.pairs = list(pairs)
        self.label_map = label_map
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: Key) -> tuple[np.ndarray, np.ndarray]:
        index, seed = key
        pair = self.pairs[index]
        image = read_image(pair.image)
        mask = self.label_map.apply(read_mask(pair.mask), pair.mask)
        return prepare(image, mask, self.transform, seed, str(pair.image), str(pair.mask))
