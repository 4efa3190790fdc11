"""RecordIO framing against MXNet's own reader and writer, split records included."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import mxnet as mx
import pytest

from semseg.data.recordio import MAGIC, FramingError, frame, read_records

MAGIC_BYTES = struct.pack("<I", MAGIC)
PAYLOADS = [
    b"",
    b"abc",
    b"x" * 1000,
    MAGIC_BYTES + b"0123" + MAGIC_BYTES + MAGIC_BYTES + b"tail",  # MXNet's writer splits at each magic
    b"12" + MAGIC_BYTES + b"34",  # a magic off the 4-byte grid stays inside the record
    b"abcd" + MAGIC_BYTES,
]


def read_all(data: bytes) -> list[bytes]:
    return list(read_records(io.BytesIO(data).read))


def test_reads_what_mxnet_writes_split_records_included(tmp_path: Path) -> None:
    path = tmp_path / "stream.rec"
    writer = mx.recordio.MXRecordIO(str(path), "w")
    for payload in PAYLOADS:
        writer.write(payload)
    writer.close()
    data = path.read_bytes()
    assert data.count(MAGIC_BYTES) > len(PAYLOADS) + 2, "MXNet split the records that hold the magic"
    assert read_all(data) == PAYLOADS


def test_mxnet_reads_what_frame_writes(tmp_path: Path) -> None:
    path = tmp_path / "stream.rec"
    path.write_bytes(b"".join(frame(p) for p in PAYLOADS))
    reader = mx.recordio.MXRecordIO(str(path), "r")
    assert [reader.read() for _ in PAYLOADS] == PAYLOADS
    assert reader.read() is None


@pytest.mark.parametrize(
    "data, message",
    [
        (frame(b"abcd")[:6], "ends inside a record header (6 of 8 bytes)"),
        (frame(b"abcdefgh")[:12], "ends inside a record: 4 of its 8 bytes"),
        (struct.pack("<II", 0xDEADBEEF, 4) + b"abcd", "wrong magic number 0xdeadbeef"),
        (struct.pack("<II", MAGIC, (2 << 29) | 4) + b"abcd", "continuation part (flag 2) without"),
        (struct.pack("<II", MAGIC, (1 << 29) | 4) + b"abcd", "ends inside a split record"),
    ],
)
def test_bad_framing_says_what_it_found(data: bytes, message: str) -> None:
    with pytest.raises(FramingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_all(data)
