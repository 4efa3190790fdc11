"""Which GPU code a CUDA library carries, read from its ELF `.nv_fatbin` section (what `cuobjdump --list-elf
--list-ptx` lists), without CUDA's tools or a GPU: the torch image's build check and its container test read the
shipped libtorch_cuda.so with it, so the README's list of compute capabilities is what the file holds, not what
torch's build flags say.

A fat binary is a header (magic 0xBA55ED50, version, header size, size of the entries) followed by entries, each
with its own header: kind (1 PTX, 2 machine code), header size, payload size and the target architecture
(major * 10 + minor); the section holds many such fat binaries one after another.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

FATBIN_MAGIC = 0xBA55ED50
PTX, SASS = 1, 2
_ELF_MAGIC = b"\x7fELF"


@dataclass
class GpuCode:
    """The architectures (major, minor) a library carries machine code (SASS) and PTX for."""

    sass: set[tuple[int, int]] = field(default_factory=set)
    ptx: set[tuple[int, int]] = field(default_factory=set)

    def describe(self) -> str:
        def names(prefix: str, arches: set[tuple[int, int]]) -> list[str]:
            return [f"{prefix}_{major}{minor}" for major, minor in sorted(arches)]

        return " ".join(names("sm", self.sass) + names("compute", self.ptx)) or "no GPU code"


def read_gpu_code(library: Path) -> GpuCode:
    """The GPU code in `library`'s `.nv_fatbin` section (none where it has no such section); ValueError for a file
    that is not a 64-bit little-endian ELF file."""
    code = GpuCode()
    with library.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        section = _section(data, ".nv_fatbin")
        if section is None:
            return code
        start, size = section
        position, end = start, start + size
        while position + 16 <= end:
            magic, _version, header_size, entries = struct.unpack_from("<IHHQ", data, position)
            if magic != FATBIN_MAGIC:
                position += 8  # fat binaries are 8-byte aligned; padding between them
                continue
            _read_entries(data, position + header_size, position + header_size + entries, code)
            position += header_size + entries
    return code


def _read_entries(data: mmap.mmap, position: int, end: int, code: GpuCode) -> None:
    while position + 32 <= end:
        kind, _version, header_size, payload = struct.unpack_from("<HHIQ", data, position)
        (arch,) = struct.unpack_from("<I", data, position + 28)
        if header_size == 0:
            return
        if kind in (PTX, SASS):
            (code.ptx if kind == PTX else code.sass).add((arch // 10, arch % 10))
        position += header_size + payload


def _section(data: mmap.mmap, name: str) -> tuple[int, int] | None:
    """(offset, size) of the ELF section `name`."""
    if data[:4] != _ELF_MAGIC or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (section_headers,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", data, 0x3A)

    def header(index: int) -> tuple[int, int, int]:
        base = section_headers + index * entry_size
        (name_offset,) = struct.unpack_from("<I", data, base)
        offset, size = struct.unpack_from("<QQ", data, base + 24)
        return name_offset, offset, size

    names_offset = header(names_index)[1]
    wanted = name.encode()
    for index in range(count):
        name_offset, offset, size = header(index)
        at = names_offset + name_offset
        if data[at : at + len(wanted) + 1] == wanted + b"\0":
            return offset, size
    return None
