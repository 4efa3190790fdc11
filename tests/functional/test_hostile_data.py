"""Hostile and broken data through a whole job: each case ends as the README documents it, either
skipped with a counted warning (training goes on) or a ClientError that names the file."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semseg.example import make_job


def png_header_only(path: Path, width: int, height: int) -> None:
    """A syntactically complete PNG that claims a size (no pixel data needed to read its header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def truncated_jpeg(data: Path) -> None:
    image = data / "train" / "0001.jpg"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])


def zero_byte_image(data: Path) -> None:
    (data / "train" / "0001.jpg").write_bytes(b"")


def garbage_image(data: Path) -> None:
    (data / "train" / "0001.jpg").write_bytes(os.urandom(2000) + b"\xff\xd9")


def tiny_image(data: Path) -> None:
    Image.new("RGB", (1, 1)).save(data / "train" / "0001.jpg")
    Image.new("L", (1, 1)).save(data / "train_annotation" / "0001.png")


def huge_image(data: Path) -> None:
    (data / "train" / "0001.jpg").unlink()
    png_header_only(data / "train" / "0001.png", 20000, 20000)
    png_header_only(data / "train_annotation" / "0001.png", 20000, 20000)


def symlink_out_of_channel(data: Path) -> None:
    outside = data.parent / "secret.jpg"
    (data / "train" / "0001.jpg").rename(outside)
    (data / "train" / "0001.jpg").symlink_to(outside)


def non_utf8_name(data: Path) -> None:
    name = os.fsdecode(b"caf\xe9-\xff")
    (data / "train" / "0001.jpg").rename(data / "train" / f"{name}.jpg")
    (data / "train_annotation" / "0001.png").rename(data / "train_annotation" / f"{name}.png")


def zero_byte_mask(data: Path) -> None:
    (data / "train_annotation" / "0001.png").write_bytes(b"")


def truncated_mask(data: Path) -> None:
    mask = data / "train_annotation" / "0001.png"
    mask.write_bytes(mask.read_bytes()[:60])


def wrong_size_mask(data: Path) -> None:
    Image.new("L", (40, 32)).save(data / "train_annotation" / "0001.png")


def rgb_mask(data: Path) -> None:
    Image.new("RGB", (32, 32)).save(data / "train_annotation" / "0001.png")


def sixteen_bit_mask(data: Path) -> None:
    Image.fromarray(np.zeros((32, 32), dtype=np.uint16)).save(data / "train_annotation" / "0001.png")


def labels_beyond_num_classes(data: Path) -> None:
    Image.fromarray(np.full((32, 32), 9, dtype=np.uint8), "L").save(data / "validation_annotation" / "0000.png")


def empty_validation_channel(data: Path) -> None:
    for path in (data / "validation").iterdir():
        path.unlink()


SKIPPED = [
    (truncated_jpeg, "1 unreadable, empty or truncated image files"),
    (zero_byte_image, "1 unreadable, empty or truncated image files"),
    (garbage_image, "1 unreadable, empty or truncated image files"),
    (tiny_image, "1 images smaller than 8 or larger than 64,000,000 pixels"),
    (huge_image, "1 images smaller than 8 or larger than 64,000,000 pixels"),
    (symlink_out_of_channel, "1 symbolic links that point out of the channel"),
]
REFUSED = [
    (zero_byte_mask, "0001.png cannot be read as a PNG image"),
    (truncated_mask, "0001.png cannot be read as a PNG image"),
    (wrong_size_mask, "0001.png is 40x32 but its image"),
    (rgb_mask, "0001.png has image mode RGB"),
    (sixteen_bit_mask, "0001.png has image mode I;16"),
    (labels_beyond_num_classes, "0000.png has pixel values [9]"),
    (empty_validation_channel, "Channel 'validation' has no usable image/annotation pairs"),
]


def hostile_job(tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    base = make_job(tmp_path / "ml", images=5, size=32, hyperparameters={"epochs": 1, "mini_batch_size": 2})
    damage(base / "input" / "data")
    return base


@pytest.mark.parametrize(("damage", "warning"), SKIPPED, ids=[d.__name__ for d, _ in SKIPPED])
def test_skipped_with_a_counted_warning(
    tmp_path: Path, train_job, damage: Callable[[Path], None], warning: str
) -> None:
    run = train_job(base=hostile_job(tmp_path, damage))
    assert run.code == 0, run.failure
    assert any(warning in m for m in run.messages), [m for m in run.messages if "skipping" in m]
    assert "Channel train: 4 image/annotation pairs" in run.messages


@pytest.mark.parametrize(("damage", "message"), REFUSED, ids=[d.__name__ for d, _ in REFUSED])
def test_refused_with_a_client_error_naming_the_file(
    tmp_path: Path, train_job, damage: Callable[[Path], None], message: str
) -> None:
    run = train_job(base=hostile_job(tmp_path, damage))
    assert run.code == 2
    assert run.failure.startswith("ClientError: ") and message in run.failure[:1024], run.failure[:400]


def test_non_utf8_file_names_train_and_log(tmp_path: Path, train_job, capsys: pytest.CaptureFixture[str]) -> None:
    run = train_job(base=hostile_job(tmp_path, non_utf8_name))
    assert run.code == 0, run.failure
    assert "Channel train: 5 image/annotation pairs" in run.messages
