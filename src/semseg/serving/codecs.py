"""Request and response bodies of /invocations: images in, a class-id PNG or RecordIO-protobuf probabilities out."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from semseg.data import images
from semseg.data.recordio import frame
from semseg.serving.record_pb2 import Record  # type: ignore[attr-defined]

REQUEST_TYPES = ("image/jpeg", "image/png", "application/x-image")
PNG = "image/png"
PROTOBUF_TYPES = ("application/x-protobuf", "application/x-recordio-protobuf")
RESPONSE_TYPES = (PNG, *PROTOBUF_TYPES)


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


def encode_probabilities(probabilities: np.ndarray) -> bytes:
    """[C, H, W] float32 as one RecordIO-wrapped `Record`: features target (float32, shape [1, C, H, W]) and shape."""
    record = Record()
    target = record.features["target"].float32_tensor
    target.values.extend(probabilities.astype(np.float32, copy=False).ravel().tolist())  # 4x faster than the array
    shape = (1, *probabilities.shape)
    target.shape.extend(shape)
    record.features["shape"].int32_tensor.values.extend(shape)
    return frame(record.SerializeToString())
