"""The one image decode-and-check (semseg.data.images) that File mode, Pipe mode and the server share."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from semseg.data.images import BadImage, decode_image, decode_mask, probe


def encoded(image: Image.Image, fmt: str = "PNG", **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def picture(height: int = 12, width: int = 20) -> np.ndarray:
    return np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_applies_it_when_asked(orientation: int) -> None:
    stored = Image.fromarray(picture())
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(stored, exif=exif.tobytes())
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    np.testing.assert_array_equal(decode_image(data, orient=True), upright)
    np.testing.assert_array_equal(decode_image(data), np.asarray(stored))  # training: as stored, like its mask


def test_a_16_bit_png_decodes_as_its_8_bit_version() -> None:
    gray = picture()[..., 0]
    wide = Image.fromarray(gray.astype(np.uint16) * 257)  # 0..255 -> 0..65535
    assert wide.mode.startswith("I")
    np.testing.assert_array_equal(decode_image(encoded(wide)), np.stack([gray] * 3, axis=-1))


def test_grayscale_palette_and_rgba_become_rgb() -> None:
    rgb = picture()
    for image in (
        Image.fromarray(rgb).convert("L"),
        Image.fromarray(rgb).convert("P"),
        Image.fromarray(rgb).convert("RGBA"),
    ):
        expected = np.asarray(image.convert("RGB"))
        np.testing.assert_array_equal(decode_image(encoded(image)), expected)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncation_is_found_whatever_pillows_global_flag_says(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what importing GluonCV does
    data = encoded(Image.fromarray(picture(64, 64)), fmt)
    with pytest.raises(BadImage, match="truncated") as info:
        decode_image(data[: len(data) * 2 // 3])
    assert info.value.kind == "unreadable"


@pytest.mark.parametrize(
    ("data", "kind", "words"),
    [
        (b"", "unreadable", "empty"),
        (b"not an image at all", "unreadable", "no readable image"),
        (encoded(Image.fromarray(picture()), "TIFF"), "format", "TIFF image; only JPEG and PNG"),
        (encoded(Image.fromarray(picture(4, 20))), "too_small", "smaller than 8 pixels"),
        (encoded(Image.new("1", (8001, 8001))), "too_large", "more than 64000000"),
    ],
)
def test_every_problem_says_which_check_failed(data: bytes, kind: str, words: str) -> None:
    with pytest.raises(BadImage, match=words) as info:
        decode_image(data)
    assert info.value.kind == kind


def test_masks_are_single_channel_8_bit_pngs_of_any_size() -> None:
    values = np.array([[0, 1, 255, 2]] * 3, dtype=np.uint8)  # 4x3: masks have no size limit of their own
    np.testing.assert_array_equal(decode_mask(encoded(Image.fromarray(values))), values)
    for bad in (Image.fromarray(picture()), Image.fromarray(values.astype(np.uint16) * 256)):
        with pytest.raises(BadImage, match="of mode") as info:
            decode_mask(encoded(bad))
        assert info.value.kind == "mode"
    with pytest.raises(BadImage, match="JPEG image of mode L"):
        decode_mask(encoded(Image.fromarray(values).resize((16, 16)), "JPEG"))


def test_probe_reads_a_file_without_decoding_it(tmp_path) -> None:
    data = encoded(Image.fromarray(picture(64, 64)))
    start = data.index(b"IDAT") + 8  # the pixels' compressed stream, garbled; header and end marker intact
    path = tmp_path / "garbled.png"
    path.write_bytes(data[:start] + bytes(64) + data[start + 64 :])
    info = probe(path)
    assert (info.format, info.width, info.height) == ("PNG", 64, 64), "the header alone"
    with pytest.raises(BadImage, match="corrupt|no readable image"):
        decode_image(path.read_bytes())  # what decoding finds; probe never got that far
