"""The one palette of every picture: PASCAL VOC's colour map, and the blend of the overlays."""

from __future__ import annotations

import numpy as np

from semseg.data.palette import OPACITY, PALETTE, overlay


def test_the_palette_is_vocs_colour_map() -> None:
    assert PALETTE.shape == (256, 3) and PALETTE.dtype == np.uint8
    voc = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128), 15: (192, 128, 128)}
    for cls, colour in voc.items():
        assert tuple(PALETTE[cls]) == colour
    assert len({tuple(c) for c in PALETTE.tolist()}) == 256  # every class its own colour


def test_the_overlay_blends_each_pixel_with_its_class_colour() -> None:
    image = np.full((2, 3, 3), 200, np.uint8)
    classes = np.array([[0, 1, 2], [3, 4, 15]], np.uint8)
    out = overlay(image, classes)
    assert OPACITY == 0.5
    assert out[0, 0].tolist() == [100, 100, 100] and out[0, 1].tolist() == [164, 100, 100]
    assert out[1, 2].tolist() == [196, 164, 164]
