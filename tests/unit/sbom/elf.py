"""Build minimal ELF64 little-endian executables holding Go build info, for the Go cataloger
tests."""

from __future__ import annotations

import struct

MAGIC = b"\xff Go buildinf:"
# Sentinels the go command wraps module info in (cmd/go/internal/modload).
MODINFO_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
MODINFO_END = bytes.fromhex("f932433186182072008242104116d8f2")
BASE = 0x400000


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def wrap_modinfo(text: str) -> str:
    return MODINFO_START.decode("latin-1") + text + MODINFO_END.decode("latin-1")


def _elf(data_section: bytes, *, with_section: bool = True) -> bytes:
    """Return an ELF with `data_section` at offset 0x1000 in its one writable PT_LOAD segment."""
    data_offset = 0x1000
    shstrtab = b"\x00.go.buildinfo\x00.shstrtab\x00"
    shstr_offset = data_offset + len(data_section)
    sh_offset = (shstr_offset + len(shstrtab) + 7) & ~7
    sections = [struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)]
    if with_section:
        sections.append(
            struct.pack(
                "<IIQQQQIIQQ",
                1,
                1,
                3,
                BASE + data_offset,
                data_offset,
                len(data_section),
                0,
                0,
                16,
                0,
            )
        )
    sections.append(
        struct.pack("<IIQQQQIIQQ", 15, 3, 0, 0, shstr_offset, len(shstrtab), 0, 0, 1, 0)
    )
    header = bytearray(64)
    header[0:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
    struct.pack_into(
        "<HHIQQQIHHHHHH",
        header,
        16,
        2,
        62,
        1,
        BASE,
        64,
        sh_offset,
        0,
        64,
        56,
        1,
        64,
        len(sections),
        len(sections) - 1,
    )
    program = struct.pack(
        "<IIQQQQQQ",
        1,
        6,
        data_offset,
        BASE + data_offset,
        BASE + data_offset,
        len(data_section),
        len(data_section),
        0x1000,
    )
    body = bytearray(header + program)
    body += bytes(data_offset - len(body))
    body += data_section
    body += shstrtab
    body += bytes(sh_offset - len(body))
    for section in sections:
        body += section
    return bytes(body)


def go_binary(version: str, modinfo: str, *, with_section: bool = True) -> bytes:
    """Return an ELF with Go 1.18+ inline build info (flag bit 2)."""
    blob = MAGIC + bytes([8, 2]) + bytes(16)
    wrapped = wrap_modinfo(modinfo).encode("latin-1")
    blob += _varint(len(version)) + version.encode() + _varint(len(wrapped)) + wrapped
    return _elf(bytes(32) + blob if not with_section else blob, with_section=with_section)


def go_binary_pointers(version: str, modinfo: str) -> bytes:
    """Return an ELF with pre-1.18 build info: pointers to Go string headers."""
    wrapped = wrap_modinfo(modinfo).encode("latin-1")
    data_address = BASE + 0x1000
    version_header_at = 32
    modinfo_header_at = 48
    version_at = 64
    modinfo_at = version_at + len(version)
    blob = bytearray(MAGIC + bytes([8, 0]))
    blob += struct.pack("<QQ", data_address + version_header_at, data_address + modinfo_header_at)
    blob += struct.pack("<QQ", data_address + version_at, len(version))
    blob += struct.pack("<QQ", data_address + modinfo_at, len(wrapped))
    blob += version.encode() + wrapped
    return _elf(bytes(blob))
