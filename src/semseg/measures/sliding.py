"""Prediction at an image's own size with bounded memory, for any engine: one pass when the image fits the
pixel budget, else overlapping `crop_size` windows (GluonCV's and mmsegmentation's "slide" inference) whose
class probabilities are averaged where they overlap. Windows are taken one row at a time, and the rows that no
later window covers are handed out at once, so the memory for a huge image grows with its width, not its area.

Used by both engines' predictors (the server's, semseg.engines.mxnet.predict and semseg.engines.torch.predict)
and by whole-image validation (both engines' `evaluate`). The engine
supplies `score`: an HxWx3 uint8 image -> [C, H, W] float32 class probabilities, in one pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

WINDOW_STRIDE = 2 / 3  # of crop_size, as GluonCV's slide evaluation

Score = Callable[[np.ndarray], np.ndarray]


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Offsets of windows of `window` that cover `size`, `stride` apart, the last flush with the end."""
    if size <= window:
        return [0]
    return [*range(0, size - window, stride), size - window]


class SlidingWindows:
    def __init__(self, score: Score, crop_size: int, pixel_budget: int) -> None:
        self.score = score
        self.crop_size = crop_size
        self.pixel_budget = max(pixel_budget, crop_size * crop_size)

    def fits(self, height: int, width: int) -> bool:
        """The image is scored in one pass."""
        return height * width <= self.pixel_budget

    def bands(self, image: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, class probabilities [C, rows, W]) for consecutive bands of rows of an HxWx3 uint8 image."""
        height, width = image.shape[:2]
        if self.fits(height, width):
            yield 0, self.score(image)
            return
        wh, ww = min(self.crop_size, height), min(self.crop_size, width)
        stride = max(1, math.ceil(self.crop_size * WINDOW_STRIDE))
        ys, xs = window_starts(height, wh, stride), window_starts(width, ww, stride)
        sums: np.ndarray | None = None
        counts = np.zeros((wh, width), dtype=np.float32)
        for i, y in enumerate(ys):
            for x in xs:
                window = self.score(image[y : y + wh, x : x + ww])
                if sums is None:
                    sums = np.zeros((window.shape[0], wh, width), dtype=np.float32)
                sums[:, :, x : x + ww] += window
                counts[:, x : x + ww] += 1
            assert sums is not None
            done = (ys[i + 1] if i + 1 < len(ys) else height) - y  # rows no later window reaches
            yield y, sums[:, :done] / counts[:done]
            keep = wh - done
            sums[:, :keep] = sums[:, done:].copy()
            sums[:, keep:] = 0
            counts[:keep] = counts[done:].copy()
            counts[keep:] = 0

    def classes(self, image: np.ndarray) -> np.ndarray:
        """HxW uint8 class ids."""
        out = np.empty(image.shape[:2], dtype=np.uint8)
        for y, band in self.bands(image):
            out[y : y + band.shape[1]] = band.argmax(axis=0)
        return out

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """[C, H, W] float32 class probabilities."""
        out: np.ndarray | None = None
        for y, band in self.bands(image):
            if out is None:
                out = np.empty((band.shape[0], *image.shape[:2]), dtype=np.float32)
            out[:, y : y + band.shape[1]] = band
        assert out is not None
        return out
