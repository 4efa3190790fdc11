"""The colours of the classes in every picture this image makes (the server's `image/jpeg` overlays): PASCAL VOC's
colour map, the one GluonCV, mmsegmentation and the VOC devkit draw with (class 0 black, 1 dark red, 2 dark
green, 3 olive, 4 dark blue, 5 purple, ..., 15 pink; all 256 values distinct), blended into the image at
OPACITY."""

from __future__ import annotations

import numpy as np

OPACITY = 0.5  # of the class colour; the image keeps 1 - OPACITY


def colours() -> np.ndarray:
    """(256, 3) uint8 RGB: VOC's map, bit i of the class id's bit triples spread over the colour's high bits."""
    ids = np.arange(256)
    out = np.zeros((256, 3), np.int64)
    for shift in range(8):
        for channel in range(3):
            bit = (ids >> (3 * shift + channel)) & 1
            out[:, channel] |= bit << (7 - shift)
    return out.astype(np.uint8)


PALETTE = colours()


def overlay(image: np.ndarray, classes: np.ndarray, opacity: float = OPACITY) -> np.ndarray:
    """HxWx3 uint8: `image` with each pixel's class colour blended in, (1 - opacity) x image + opacity x colour."""
    blended = (1 - opacity) * image.astype(np.float32) + opacity * PALETTE[classes].astype(np.float32)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)
