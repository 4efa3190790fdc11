"""Paired transforms `(image, mask, rng) -> (image, mask)` on uint8 arrays (image HxWx3 RGB, mask HxW).

Masks are always resized with nearest neighbour and padded with 255 (ignore). Normalisation to ImageNet mean/std
happens on the device (semseg.engines.normalization, in each engine's `normalize` or `Inputs`), so batches travel
as uint8: a quarter of the bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from semseg.data.labels import IGNORE

Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def resize(image: np.ndarray, mask: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    if image.shape[:2] == (height, width):
        return image, mask
    return (
        cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR),
        cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST),
    )


def resize_short(image: np.ndarray, mask: np.ndarray, short: int) -> tuple[np.ndarray, np.ndarray]:
    """Rescale so the shorter side is `short`, keeping the aspect ratio."""
    h, w = image.shape[:2]
    if h <= w:
        return resize(image, mask, short, max(short, round(w * short / h)))
    return resize(image, mask, max(short, round(h * short / w)), short)


def crop(image: np.ndarray, mask: np.ndarray, top: int, left: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    return image[top : top + size, left : left + size], mask[top : top + size, left : left + size]


def seed_train(crop_size: int) -> Transform:
    """The managed algorithm's default: shorter side to crop_size, random square crop along the longer side."""

    def transform(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        image, mask = resize_short(image, mask, crop_size)
        h, w = image.shape[:2]
        top = int(rng.integers(0, h - crop_size + 1))
        left = int(rng.integers(0, w - crop_size + 1))
        return crop(image, mask, top, left, crop_size)

    return transform


def gluoncv_train(crop_size: int, base_size: int) -> Transform:
    """GluonCV's training augmentation: mirror, long side = base_size x U(0.5, 2), pad, crop, blur."""

    def transform(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        long_size = int(rng.integers(int(base_size * 0.5), int(base_size * 2.0) + 1))
        h, w = image.shape[:2]
        if h > w:
            oh, ow = long_size, max(1, int(w * long_size / h + 0.5))
        else:
            oh, ow = max(1, int(h * long_size / w + 0.5)), long_size
        image, mask = resize(np.ascontiguousarray(image), np.ascontiguousarray(mask), oh, ow)
        pad_h, pad_w = max(crop_size - oh, 0), max(crop_size - ow, 0)
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=0)
            mask = np.pad(mask, ((0, pad_h), (0, pad_w)), constant_values=IGNORE)
        h, w = image.shape[:2]
        top = int(rng.integers(0, h - crop_size + 1))
        left = int(rng.integers(0, w - crop_size + 1))
        image, mask = crop(image, mask, top, left, crop_size)
        if rng.random() < 0.5:
            sigma = float(rng.random())
            if sigma > 0.05:
                image = cv2.GaussianBlur(image, (0, 0), sigma)
        return image, mask

    return transform


def center_crop(crop_size: int) -> Transform:
    """Validation crop (GluonCV's): shorter side to crop_size, centre square crop."""

    def transform(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        image, mask = resize_short(image, mask, crop_size)
        h, w = image.shape[:2]
        return crop(image, mask, (h - crop_size) // 2, (w - crop_size) // 2, crop_size)

    return transform


def whole_image(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Validation of whole, uncropped images (validation_mini_batch_size=1)."""
    return image, mask
