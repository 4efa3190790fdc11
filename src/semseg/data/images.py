"""One decode-and-check for every image this project reads: File mode, Pipe mode and the server.

`probe` reads only the header (and the last KiB): the format must be JPEG or PNG, the file complete (its end
marker present: Pillow's global LOAD_TRUNCATED_IMAGES, which importing GluonCV turns on, plays no part), the
size between MIN_SIDE pixels a side and MAX_PIXELS in all. `decode_image` runs those checks, then decodes with
OpenCV to HxWx3 uint8 RGB: grayscale, palette and alpha images converted, 16-bit images scaled to 8 bits (the
high byte: a 16-bit PNG gives its 8-bit version's pixels), EXIF orientation applied only when asked (the server;
training ignores it, as the masks have none). `decode_mask` gives a single-channel 8-bit PNG's values (palette
indices, not colours). Every problem is a BadImage saying which check failed; the caller names the file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from semseg.contract.config import OUTPUT_STRIDE

FORMATS = ("JPEG", "PNG")
MASK_MODES = ("L", "P")
MAX_PIXELS = 64_000_000  # 8000 x 8000; larger ones need GBs per image in decoding and augmentation
MIN_SIDE = OUTPUT_STRIDE  # a smaller image has no feature map to speak of
_TAIL = 1024  # how far from the end of a file its end marker may be
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}
# EXIF orientation -> the numpy view that shows the image upright (Pillow's ImageOps.exif_transpose)
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


class BadImage(ValueError):
    """Why some bytes are no usable image. `kind`: unreadable (empty, truncated, corrupt or no image at all),
    format (an image, but not JPEG or PNG), too_small, too_large."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class ImageInfo:
    format: str
    mode: str
    width: int
    height: int
    orientation: int = 1  # EXIF orientation (1: stored upright)


def probe(source: bytes | Path, *, sized: bool = True) -> ImageInfo:
    """Format, mode and size of an encoded image, after the checks that need no decoding (`sized`: the size
    limits too; a mask has none of its own, it must have its image's size)."""
    size, tail = _size_and_tail(source)
    if not size:
        raise BadImage("unreadable", "is empty")
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as img:
            info = ImageInfo(str(img.format), img.mode, img.width, img.height, _orientation(img))
    except Image.DecompressionBombError as exc:  # far above MAX_PIXELS: Pillow refuses it at once
        raise BadImage("too_large", f"is too large: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImage("unreadable", f"is no readable image: {exc}") from None
    if info.format not in FORMATS:
        raise BadImage("format", f"is a {info.format} image; only {' and '.join(FORMATS)} are read")
    if _END_MARKERS[info.format] not in tail:
        raise BadImage("unreadable", f"is a truncated {info.format} (its end marker is missing)")
    if not sized:
        return info
    if info.width * info.height > MAX_PIXELS:
        raise BadImage("too_large", f"has {info.width}x{info.height} pixels, more than {MAX_PIXELS} (64 Mpx)")
    if min(info.width, info.height) < MIN_SIDE:
        raise BadImage("too_small", f"is {info.width}x{info.height}, smaller than {MIN_SIDE} pixels on a side")
    return info


def decode_image(data: bytes, *, orient: bool = False) -> np.ndarray:
    """HxWx3 uint8 RGB of an encoded JPEG or PNG (see the module's text); BadImage when it is none."""
    info = probe(data)
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None or image.shape[:2] != (info.height, info.width):
        raise BadImage("unreadable", f"is a corrupt {info.format} that cannot be decoded")
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if orient and info.orientation in _ORIENT:
        rgb = np.ascontiguousarray(_ORIENT[info.orientation](rgb))
    return rgb


def decode_mask(data: bytes) -> np.ndarray:
    """HxW uint8 values of a single-channel 8-bit PNG; BadImage (kind `mode` for another image) otherwise."""
    info = probe(data, sized=False)
    check_mask(info)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage("unreadable", f"is a corrupt PNG: {exc}") from None


def check_mask(info: ImageInfo) -> None:
    """BadImage (kind `mode`) unless the image is a single-channel 8-bit PNG (grayscale L or palette P)."""
    if info.format != "PNG" or info.mode not in MASK_MODES:
        raise BadImage("mode", f"is a {info.format} image of mode {info.mode}")


def _size_and_tail(source: bytes | Path) -> tuple[int, bytes]:
    """The size, and the last _TAIL bytes (where the end marker is), reading no more of a file."""
    if isinstance(source, bytes):
        return len(source), source[-_TAIL:]
    size = source.stat().st_size
    with open(source, "rb") as f:
        f.seek(max(0, size - _TAIL))
        return size, f.read()


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError):  # a broken EXIF block: as stored
        return 1
    return value if isinstance(value, int) else 1
