"""MXNet's RecordIO framing, as SageMaker wraps records (Pipe mode's `RecordWrapperType: RecordIO`, and
"application/x-recordio-protobuf" responses): per record a little-endian u32 magic 0xced7230a, a u32 length
word whose upper 3 bits flag a split record (0 whole, 1 first part, 2 middle, 3 last; MXNet's writer splits a
payload where it holds the magic at a 4-byte boundary and drops that magic) and the payload padded with zeros
to 4 bytes.

Written here rather than with `mx.recordio.MXRecordIO`: that writes only to files (a response is built in
memory), and its reader blocks inside C on a FIFO, where neither a timeout nor a stop signal can reach it,
stops at bad framing with "Invalid RecordIO File" and no position, and would load MXNet into the PyTorch
engine. The tests check both directions against MXNet's own reader and writer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

MAGIC = 0xCED7230A
LENGTH_MASK = (1 << 29) - 1
_HEADER = struct.Struct("<II")
_MAGIC_BYTES = struct.pack("<I", MAGIC)


class FramingError(ValueError):
    """The bytes are not RecordIO; the message says what was found (the caller adds where)."""


def frame(payload: bytes) -> bytes:
    """One RecordIO record holding `payload` (never split)."""
    if len(payload) > LENGTH_MASK:
        raise ValueError(f"a RecordIO record holds at most {LENGTH_MASK} bytes, not {len(payload)}")
    padding = -len(payload) % 4
    return _HEADER.pack(MAGIC, len(payload)) + payload + b"\0" * padding


def frame_parts(parts: list[Any]) -> bytes:
    """One RecordIO record whose payload is `parts` (bytes-like) one after the other, in a single allocation."""
    length = sum(len(part) for part in parts)
    if length > LENGTH_MASK:
        raise ValueError(f"a RecordIO record holds at most {LENGTH_MASK} bytes, not {length}")
    return b"".join([_HEADER.pack(MAGIC, length), *parts, b"\0" * (-length % 4)])


def read_records(read_exact: Callable[[int], bytes]) -> Iterator[bytes]:
    """The payloads of a RecordIO stream, split records joined. `read_exact(n)` returns n bytes, fewer
    only at the end of the stream. Raises FramingError on a wrong magic or a truncated record."""
    parts: list[bytes] = []
    while True:
        header = read_exact(_HEADER.size)
        if not header:
            if parts:
                raise FramingError("the stream ends inside a split record (its last part is missing)")
            return
        if len(header) < _HEADER.size:
            raise FramingError(f"the stream ends inside a record header ({len(header)} of 8 bytes)")
        magic, word = _HEADER.unpack(header)
        if magic != MAGIC:
            raise FramingError(f"wrong magic number 0x{magic:08x} (RecordIO records start with 0x{MAGIC:08x})")
        flag, length = word >> 29, word & LENGTH_MASK
        padded = length + (-length % 4)
        body = read_exact(padded)
        if len(body) < padded:
            raise FramingError(f"the stream ends inside a record: {len(body)} of its {padded} bytes arrived")
        if flag not in (0, 1) and not parts:
            raise FramingError(f"a continuation part (flag {flag}) without the record's first part")
        if flag in (0, 1) and parts:
            raise FramingError("a new record starts before the split record before it ended")
        parts.append(body[:length])
        if flag in (0, 3):
            yield _MAGIC_BYTES.join(parts)
            parts = []
