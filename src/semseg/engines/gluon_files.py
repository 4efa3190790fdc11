"""GluonCV parameter files (`model_best.params`, `model_algo-1`, the ImageNet backbones), read and written with numpy
alone: the engine-neutral home of the one weight format that both engines, the export and `semseg-weights` share.

The file is MXNet's NDArray list (`mx.nd.save`, what `HybridBlock.save_parameters` writes; MXNet 1.x's
src/ndarray/ndarray.cc): a uint64 magic 0x112 and a reserved uint64, the arrays (a uint64 count, then each: the
uint32 magic 0xF993FAC9 (0xF993FACA under NumPy shape semantics), int32 storage type (0: dense), int32 ndim, int64
dims, int32 device type and id, int32 type flag, the data in C order, little-endian), then the names (a uint64
count, each a uint64 length and its bytes). MXNet itself is the only other reader of this format, and it lives in
one engine (and is retired): tests/unit/test_gluon_files.py holds these functions equal to `mx.nd.save` and
`mx.nd.load` byte for byte and array for array. Sparse arrays, which no GluonCV model has, are refused.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from semseg.contract.errors import ClientError
from semseg.contract.files import atomic_write

LIST_MAGIC = 0x112
ARRAY_MAGICS = (0xF993FAC9, 0xF993FACA)  # NDARRAY_V2_MAGIC, NDARRAY_V3_MAGIC (NumPy shape semantics)
CPU = 1  # Context::kCPU
TYPE_FLAGS = {0: "<f4", 1: "<f8", 2: "<f2", 3: "u1", 4: "<i4", 5: "i1", 6: "<i8", 7: "?"}  # mshadow's type flags
FLAG_OF = {np.dtype(dtype).str.replace("|", ""): flag for flag, dtype in TYPE_FLAGS.items()}


class FormatError(ValueError):
    """The bytes are not a GluonCV parameter file (or end early)."""


def read_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    """A GluonCV parameter file as name -> array (the `arg:`/`aux:` prefixes of symbol files removed); a ClientError
    that names `what` and the file when it cannot be read."""
    try:
        arrays = parse(path.read_bytes())
    except OSError as exc:
        raise ClientError(f"{what} ({path}) cannot be read: {exc.strerror or exc}. Replace it.") from None
    except FormatError as exc:
        raise ClientError(f"{what} ({path}) is not a GluonCV parameter file: {exc}. Replace it.") from None
    return {name.split(":", 1)[-1]: array for name, array in arrays.items()}


def save_arrays(arrays: Mapping[str, np.ndarray], path: Path) -> None:
    """Write name -> array as a GluonCV parameter file (what `HybridBlock.save_parameters` writes), as float32,
    atomically."""
    data = serialize({name: np.asarray(array, np.float32) for name, array in arrays.items()})
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def serialize(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of `mx.nd.save(path, arrays)` for dense arrays of MXNet's types."""
    chunks = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    for array in arrays.values():
        array = np.ascontiguousarray(array)
        flag = FLAG_OF.get(array.dtype.newbyteorder("<").str.replace("|", ""))
        if flag is None or array.ndim == 0:
            raise FormatError(f"MXNet's files hold no {array.dtype} array of shape {array.shape}")
        chunks.append(struct.pack(f"<Iii{array.ndim}qiii", ARRAY_MAGICS[0], 0, array.ndim, *array.shape, CPU, 0, flag))
        chunks.append(array.astype(TYPE_FLAGS[flag], copy=False).tobytes())
    chunks.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        encoded = name.encode()
        chunks.append(struct.pack("<Q", len(encoded)) + encoded)
    return b"".join(chunks)


def parse(data: bytes) -> dict[str, np.ndarray]:
    """name -> array of the bytes of a named NDArray list (FormatError for anything else)."""
    reader = _Reader(data)
    magic, _reserved = reader.unpack("<QQ")
    if magic != LIST_MAGIC:
        raise FormatError(f"it starts with {magic:#x}, not MXNet's list magic {LIST_MAGIC:#x}")
    arrays = [_array(reader, index) for index in range(reader.count("arrays"))]
    names = [reader.take(reader.unpack("<Q")[0], "a name").decode() for _ in range(reader.count("names"))]
    if len(names) != len(arrays):
        raise FormatError(f"{len(arrays)} arrays but {len(names)} names: parameters without names")
    if reader.offset != len(data):
        raise FormatError(f"{len(data) - reader.offset} bytes after the names")
    return dict(zip(names, arrays, strict=True))


def _array(reader: _Reader, index: int) -> np.ndarray:
    magic, storage, ndim = reader.unpack("<Iii")
    if magic not in ARRAY_MAGICS:
        raise FormatError(f"array {index} has the magic {magic:#x} (an MXNet format older than 1.0, or no array)")
    if storage != 0:
        raise FormatError(f"array {index} is sparse (storage type {storage}); GluonCV's weights are dense")
    if not 1 <= ndim <= 32:  # MXNet writes no context, type or data after an empty shape: no GluonCV weight
        raise FormatError(f"array {index} has {ndim} dimensions")
    shape = reader.unpack(f"<{ndim}q")
    _device, _device_id, flag = reader.unpack("<iii")
    if flag not in TYPE_FLAGS:
        raise FormatError(f"array {index} has the unknown type flag {flag}")
    dtype = np.dtype(TYPE_FLAGS[flag])
    size = int(np.prod(shape, dtype=np.int64))
    if any(d < 0 for d in shape):
        raise FormatError(f"array {index} has the shape {shape}")
    raw = reader.take(size * dtype.itemsize, f"array {index}'s data")
    return np.frombuffer(raw, dtype).reshape(shape).astype(dtype.newbyteorder("="))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.offset = 0

    def take(self, size: int, what: str) -> bytes:
        if self.offset + size > len(self.data):
            raise FormatError(f"the file ends in {what} (truncated: {len(self.data)} bytes)")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return bytes(chunk)

    def unpack(self, layout: str) -> tuple[int, ...]:
        return struct.unpack(layout, self.take(struct.calcsize(layout), "a header"))

    def count(self, what: str) -> int:
        (count,) = self.unpack("<Q")
        if count > len(self.data):  # each entry takes more than a byte: a count past that is no count
            raise FormatError(f"it claims {count} {what}")
        return int(count)
