"""Request and response bodies of /invocations: images in; a class-id PNG, RecordIO-protobuf probabilities, or a
JPEG of the image with its predicted classes blended in (for people) out."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from semseg.data import images, palette
from semseg.data.recordio import LENGTH_MASK, frame_parts

REQUEST_TYPES = ("image/jpeg", "image/png", "application/x-image")
PNG = "image/png"
JPEG = "image/jpeg"
JPEG_QUALITY = 90  # and no chroma subsampling: the class colours keep their edges
PROTOBUF_TYPES = ("application/x-protobuf", "application/x-recordio-protobuf")
RESPONSE_TYPES = (PNG, *PROTOBUF_TYPES, JPEG)


class BadRequest(Exception):
    """A request the server refuses: `status` is the HTTP status, the message says why and what is accepted."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(header: str | None) -> str:
    """`image/jpeg; charset=...` -> `image/jpeg`."""
    return (header or "").split(";")[0].strip().lower()


def request_type(header: str | None) -> str:
    kind = media_type(header)
    if kind not in REQUEST_TYPES:
        raise BadRequest(
            415, f"Content-Type {kind or '(none)'} is not supported; send one of {', '.join(REQUEST_TYPES)}"
        )
    return kind


def response_type(accept: str | None) -> str:
    """The first supported type of an Accept header; a missing Accept or */* gets the class-id PNG."""
    if not accept or not accept.strip():
        return PNG
    offered = [media_type(part) for part in accept.split(",")]
    for kind in offered:
        if kind in RESPONSE_TYPES:
            return kind
        if kind in ("*/*", "image/*"):
            return PNG
    raise BadRequest(415, f"Accept {accept} is not supported; ask for one of {', '.join(RESPONSE_TYPES)}")


_STATUS = {"format": 415, "too_large": 413}  # else 400


def decode_image(body: bytes) -> np.ndarray:
    """HxWx3 uint8 RGB with the EXIF orientation applied (semseg.data.images: the training images' decoding);
    a BadRequest whose status says why: 400 unreadable or too small, 413 too large, 415 not JPEG or PNG."""
    if not body:
        raise BadRequest(400, "The request body is empty; send the image's bytes")
    try:
        return images.decode_image(body, orient=True)
    except images.BadImage as exc:
        status = _STATUS.get(exc.kind, 400)
        if status == 400:
            raise BadRequest(400, f"The request body is not a readable image (JPEG or PNG): it {exc}") from None
        raise BadRequest(status, f"The image {exc}") from None


def encode_png(classes: np.ndarray) -> bytes:
    """A single-channel 8-bit PNG of class ids (the labels' format)."""
    buffer = io.BytesIO()
    Image.fromarray(classes.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def encode_overlay(image: np.ndarray, classes: np.ndarray) -> bytes:
    """A JPEG of `image` with each pixel's class colour blended in (semseg.data.palette)."""
    buffer = io.BytesIO()
    picture = Image.fromarray(palette.overlay(image, classes), mode="RGB")
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


def encode_probabilities(probabilities: np.ndarray) -> bytes:
    """[C, H, W] float32 as one RecordIO-wrapped `Record`: features target (float32, shape [1, C, H, W]) and shape.

    The protobuf bytes are written here around the array's own bytes (protobuf's wire format: length-delimited
    fields, packed little-endian floats and varints; the tests parse the result with the SDK's `Record`), so the
    server holds the probabilities and one response, never a list of Python floats (~6 GB for 12 Mpx and 21
    classes). A RecordIO record holds at most 512 MiB: a larger answer is a 413 that says to ask for the PNG.
    """
    check_probabilities_fit(*probabilities.shape)
    values = np.ascontiguousarray(probabilities, dtype="<f4")
    size = values.nbytes
    shape = (1, *values.shape)
    dims = b"".join(_varint(d) for d in shape)
    tensor = [_field(1, size), values.reshape(-1).view(np.uint8), _field(3, len(dims)), dims]  # Float32Tensor
    value = [_field(2, _length(tensor)), *tensor]  # Value.float32_tensor
    target = [_field(1, 6), b"target", _field(2, _length(value)), *value]  # features entry "target"
    int32 = _field(1, len(dims)) + dims  # Int32Tensor.values, packed
    shape_value = _field(7, len(int32)) + int32  # Value.int32_tensor
    shape_entry = _field(1, 5) + b"shape" + _field(2, len(shape_value)) + shape_value
    return frame_parts([_field(1, _length(target)), *target, _field(1, len(shape_entry)), shape_entry])


def check_probabilities_fit(classes: int, height: int, width: int) -> None:
    """A 413 when the probabilities of an image this size cannot be answered (asked before predicting). RecordIO's
    record length has 29 bits, and its split records cannot carry arbitrary bytes (a reader puts the magic number
    back between the parts), so one record, and so one answer, holds at most 512 MiB (before protobuf's 2 GiB)."""
    size = 4 * classes * height * width
    if size > LENGTH_MASK - 1024:
        raise BadRequest(
            413,
            f"The probabilities of this image are {size:,} bytes ({classes} classes x {width}x{height} pixels), "
            f"more than one RecordIO record holds ({LENGTH_MASK:,} bytes). Ask for Accept: image/png (the class "
            f"ids), or send an image of at most {(LENGTH_MASK - 1024) // (4 * classes):,} pixels.",
        )


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, length: int) -> bytes:
    """The key and length of a length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(length)


def _length(parts: list[Any]) -> int:
    return sum(len(part) for part in parts)
