from __future__ import annotations

import numpy as np
import pytest

from semseg.data import transforms


def sample(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[:, w // 2 :] = 1
    mask[0, 0] = 255
    return image, mask


@pytest.mark.parametrize(("h", "w"), [(40, 100), (100, 40), (20, 20), (64, 32)])
def test_seed_crop_rescales_short_side_then_crops_square(h: int, w: int) -> None:
    image, mask = sample(h, w)
    out_image, out_mask = transforms.seed_train(32)(image, mask, np.random.default_rng(1))
    assert out_image.shape == (32, 32, 3) and out_mask.shape == (32, 32)
    assert set(np.unique(out_mask)) <= {0, 1, 255}, "masks are resized with nearest neighbour"


@pytest.mark.parametrize(("h", "w"), [(32, 128), (128, 32)])
def test_seed_crop_is_random_along_the_long_side_only(h: int, w: int) -> None:
    """The short side is already crop_size, so the crop keeps all of it and moves along the long side."""
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    image = np.stack([rows, cols, np.zeros_like(rows)], axis=-1).astype(np.uint8)  # each pixel: its position
    offsets = set()
    for seed in range(20):
        out, _ = transforms.seed_train(32)(image, np.zeros((h, w), np.uint8), np.random.default_rng(seed))
        top, left = int(out[0, 0, 0]), int(out[0, 0, 1])
        assert np.array_equal(out[..., 0], rows[top : top + 32, left : left + 32]), "an unscaled, contiguous crop"
        assert (top == 0) if h == 32 else (left == 0), "never offset along the short side"
        offsets.add(top + left)
    assert len(offsets) > 5, "the offset along the long side varies"


@pytest.mark.parametrize(("h", "w"), [(40, 100), (300, 200)])
def test_gluoncv_mode_pads_masks_with_ignore(h: int, w: int) -> None:
    image, mask = sample(h, w)
    transform = transforms.gluoncv_train(crop_size=96, base_size=48)  # long side 24..96: always padded
    out_image, out_mask = transform(image, mask, np.random.default_rng(3))
    assert out_image.shape == (96, 96, 3) and out_mask.shape == (96, 96)
    assert out_mask[-1, -1] == 255 and out_image[-1, -1].tolist() == [0, 0, 0]
    assert set(np.unique(out_mask)) <= {0, 1, 255}


def test_gluoncv_mode_mirrors_sometimes() -> None:
    image, mask = sample(64, 64)
    transform = transforms.gluoncv_train(crop_size=64, base_size=64)
    firsts = {int(transform(image, mask, np.random.default_rng(s))[1][:, :8].mean() > 0.5) for s in range(30)}
    assert firsts == {0, 1}


def test_center_crop_is_deterministic() -> None:
    image, mask = sample(50, 80)
    a = transforms.center_crop(40)(image, mask, np.random.default_rng(0))
    b = transforms.center_crop(40)(image, mask, np.random.default_rng(99))
    assert a[0].shape == (40, 40, 3) and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_whole_image_keeps_size() -> None:
    image, mask = sample(37, 53)
    out_image, out_mask = transforms.whole_image(image, mask, np.random.default_rng(0))
    assert out_image.shape == (37, 53, 3) and out_mask.shape == (37, 53)
