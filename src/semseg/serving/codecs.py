"""Request and response bodies of /invocations: images in, a class-id PNG or RecordIO-protobuf probabilities out."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from semseg.data.recordio import frame
from semseg.serving.record_pb2 import Record  # type: ignore[attr-defined]

REQUEST_TYPES = ("image/jpeg", "image/png", "application/x-image")
PNG = "image/png"
PROTOBUF_TYPES = ("application/x-protobuf", "application/x-recordio-protobuf")
RESPONSE_TYPES = (PNG, *PROTOBUF_TYPES)
MAX_PIXELS = 64_000_000  # the largest image the README accepts (64 Mpx)


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


def decode_image(body: bytes) -> np.ndarray:
    """HxWx3 uint8 RGB with the EXIF orientation applied; grayscale, RGBA and palette images converted."""
    if not body:
        raise BadRequest(400, "The request body is empty; send the image's bytes")
    try:
        opened = Image.open(io.BytesIO(body))  # reads the header only
    except Image.DecompressionBombError as exc:  # far above MAX_PIXELS: Pillow refuses it at once
        raise BadRequest(413, f"The image is too large: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadRequest(400, f"The request body is not a readable image (JPEG or PNG): {exc}") from None
    if opened.width * opened.height > MAX_PIXELS:
        raise BadRequest(413, f"The image has {opened.width}x{opened.height} pixels, more than {MAX_PIXELS} (64 Mpx)")
    try:
        opened.load()
        upright = ImageOps.exif_transpose(opened)
        return np.asarray(upright.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadRequest(400, f"The request body is not a readable image (JPEG or PNG): {exc}") from None


def encode_png(classes: np.ndarray) -> bytes:
    """A single-channel 8-bit PNG of class ids (the labels' format)."""
    buffer = io.BytesIO()
    Image.fromarray(classes.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def encode_probabilities(probabilities: np.ndarray) -> bytes:
    """[C, H, W] float32 as one RecordIO-wrapped `Record`: features target (float32, shape [1, C, H, W]) and shape."""
    record = Record()
    target = record.features["target"].float32_tensor
    target.values.extend(probabilities.astype(np.float32, copy=False).ravel().tolist())  # 4x faster than the array
    shape = (1, *probabilities.shape)
    target.shape.extend(shape)
    record.features["shape"].int32_tensor.values.extend(shape)
    return frame(record.SerializeToString())
