"""Prediction by windows (semseg.measures.sliding), with a scorer made of numpy alone: where windows start, which rows
each band hands out, and that every pixel is the mean of the windows that cover it."""

from __future__ import annotations

import numpy as np

from semseg.measures.sliding import SlidingWindows, window_starts


def test_window_starts_cover_the_side_and_end_flush() -> None:
    assert window_starts(20, 32, 22) == [0]
    assert window_starts(32, 32, 22) == [0]
    assert window_starts(100, 32, 22) == [0, 22, 44, 66, 68]
    assert window_starts(33, 32, 22) == [0, 1]


class Positional:
    """Scores that depend on a window's own pixels and on where in the window they are, so that a wrong
    offset or a wrong average shows: class 0 = the pixel's red value, class 1 = its row in the window."""

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.sizes.append((image.shape[0], image.shape[1]))
        rows = np.broadcast_to(np.arange(image.shape[0], dtype=np.float32)[:, None], image.shape[:2])
        return np.stack([image[:, :, 0].astype(np.float32), rows])


def test_an_image_within_the_budget_is_scored_in_one_pass() -> None:
    score = Positional()
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    windows = SlidingWindows(score, crop_size=16, pixel_budget=40 * 50)
    assert windows.fits(40, 50) and not windows.fits(41, 50)
    np.testing.assert_array_equal(windows.probabilities(image), score(image))
    assert score.sizes == [(40, 50), (40, 50)]


def test_the_budget_is_never_below_one_window() -> None:
    assert SlidingWindows(Positional(), crop_size=32, pixel_budget=1).pixel_budget == 32 * 32


def test_above_the_budget_every_pixel_is_the_mean_of_its_windows() -> None:
    score = Positional()
    image = np.random.default_rng(1).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    windows = SlidingWindows(score, crop_size=32, pixel_budget=32 * 32)
    bands = list(windows.bands(image))
    assert [y for y, _ in bands] == [0, 22, 38]  # rows 0-21, 22-37, 38-69: each as soon as no later window reaches it
    assert sum(band.shape[1] for _, band in bands) == 70
    assert set(score.sizes) == {(32, 32)} and len(score.sizes) == 3 * 4
    expected = np.zeros((2, 70, 90), np.float32)
    counts = np.zeros((70, 90), np.float32)
    for y in window_starts(70, 32, 22):
        for x in window_starts(90, 32, 22):
            expected[:, y : y + 32, x : x + 32] += Positional()(image[y : y + 32, x : x + 32])
            counts[y : y + 32, x : x + 32] += 1
    probabilities = windows.probabilities(image)
    np.testing.assert_allclose(probabilities, expected / counts, rtol=1e-6)
    np.testing.assert_allclose(probabilities[0], image[:, :, 0], rtol=1e-6)  # the red value, wherever it was
    np.testing.assert_array_equal(windows.classes(image), probabilities.argmax(axis=0))
