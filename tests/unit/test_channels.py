from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image

from semseg.contract.errors import ClientError
from semseg.data.channels import find_pairs


def image(path: Path, size: tuple[int, int] = (16, 12), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)


def test_pairs_by_stem_with_subfolders_and_skips(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    images, masks = tmp_path / "train", tmp_path / "train_annotation"
    image(images / "a" / "0001.jpg")
    image(images / "0002.png")
    image(images / "0003.jpg")  # no mask
    (images / "notes.txt").write_text("hello")
    image(masks / "a" / "0001.png", mode="L")
    image(masks / "0002.png", mode="P")
    image(masks / "0009.png", mode="L")  # no image
    with caplog.at_level(logging.WARNING):
        pairs = find_pairs(images, masks)
    assert [(p.image.name, p.mask.name) for p in pairs] == [("0002.png", "0002.png"), ("0001.jpg", "0001.png")]
    text = caplog.text
    assert "notes.txt is not readable image file" in text
    assert "1 images without a mask" in text and "1 masks without an image" in text


def test_masks_in_a_flat_folder_pair_with_images_in_subfolders(tmp_path: Path) -> None:
    image(tmp_path / "train" / "city" / "x.jpg")
    image(tmp_path / "train_annotation" / "x.png", mode="L")
    assert len(find_pairs(tmp_path / "train", tmp_path / "train_annotation")) == 1


def test_no_pairs_names_the_channel(tmp_path: Path) -> None:
    image(tmp_path / "validation" / "a.jpg")
    (tmp_path / "validation_annotation").mkdir()
    with pytest.raises(ClientError, match="Channel 'validation' has no usable image/annotation pairs"):
        find_pairs(tmp_path / "validation", tmp_path / "validation_annotation")


@pytest.mark.parametrize(
    ("mode", "size", "message"),
    [
        ("RGB", (8, 6), "has image mode RGB"),
        ("I;16", (8, 6), "has image mode I;16"),
        ("L", (6, 8), "is 6x8 but its image"),
    ],
)
def test_bad_masks_name_the_file(tmp_path: Path, mode: str, size: tuple[int, int], message: str) -> None:
    image(tmp_path / "train" / "a.jpg")
    image(tmp_path / "train_annotation" / "a.png", size=size, mode=mode)
    with pytest.raises(ClientError, match=message) as info:
        find_pairs(tmp_path / "train", tmp_path / "train_annotation")
    assert "a.png" in str(info.value)


def test_unreadable_images_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    image(tmp_path / "train" / "good.jpg")
    (tmp_path / "train" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    image(tmp_path / "train_annotation" / "good.png", mode="L")
    image(tmp_path / "train_annotation" / "broken.png", mode="L")
    with caplog.at_level(logging.WARNING):
        pairs = find_pairs(tmp_path / "train", tmp_path / "train_annotation")
    assert [p.image.name for p in pairs] == ["good.jpg"]
    assert "1 unreadable, empty or truncated image files" in caplog.text


def test_an_image_and_its_twin_of_another_extension_are_one_sample(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image(tmp_path / "train" / "a.jpg")
    image(tmp_path / "train" / "a.png")
    image(tmp_path / "train_annotation" / "a.png", mode="L")
    with caplog.at_level(logging.WARNING):
        pairs = find_pairs(tmp_path / "train", tmp_path / "train_annotation")
    assert [p.image.name for p in pairs] == ["a.jpg"]
    assert "skipping 1 file(s) whose name differs from another's only in the extension" in caplog.text
    assert f"{tmp_path / 'train' / 'a.png'} (uses a.jpg)" in caplog.text
