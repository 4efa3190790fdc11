"""MXNet's RecordIO framing, as SageMaker wraps records ("application/x-recordio-protobuf"): per record a
little-endian u32 magic 0xced7230a, a u32 length word (the upper 3 bits flag split records, which this writer
never makes) and the payload padded with zeros to 4 bytes.

Written here rather than with `mx.recordio.MXRecordIO`, which writes only to files: a response is built in
memory. The tests read what this writes with MXNet's own reader.
"""

from __future__ import annotations

import struct

MAGIC = 0xCED7230A
LENGTH_MASK = (1 << 29) - 1


def frame(payload: bytes) -> bytes:
    """One RecordIO record holding `payload`."""
    if len(payload) > LENGTH_MASK:
        raise ValueError(f"a RecordIO record holds at most {LENGTH_MASK} bytes, not {len(payload)}")
    padding = -len(payload) % 4
    return struct.pack("<II", MAGIC, len(payload)) + payload + b"\0" * padding
