"""A forward-only tar reader for layer streams: POSIX ustar, pax extended headers and GNU long
names.

The standard library's `tarfile` is not used for layers for two measured reasons: in stream mode it
keeps a `TarInfo` for every entry it has read (memory grows with the entry count of a hostile
layer), and skipping entry data through its stream buffer cost about 40 µs per entry on a 3,885
entry layer, most of the cataloging time of a Debian image. This reader parses the 512-byte
headers from a 1 MiB buffer and skips data by moving an offset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

BLOCK = 512
_CHUNK = 1024 * 1024
_MAX_META = 1024 * 1024
"""Largest pax header or GNU long name accepted."""

REGULAR = "0"
HARDLINK = "1"
SYMLINK = "2"
DIRECTORY = "5"
_REGULAR_TYPES = {"0", "\x00", "7"}
_ZERO_BLOCK = bytes(BLOCK)


class TarFormatError(ValueError):
    """The stream is not a well-formed tar archive."""


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class TarEntry:
    """One archive member; `kind` is a ustar type flag (`0` for every regular file)."""

    name: str
    kind: str
    size: int
    mode: int
    linkname: str


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:
        # GNU base-256: big-endian two's complement with the top bit as marker.
        value = int.from_bytes(field, "big") & ~(0x80 << (8 * (len(field) - 1)))
        if field[0] & 0x40:
            raise TarFormatError("negative number in tar header")
        return value
    text = field.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError as exc:
        raise TarFormatError(f"invalid octal number {text!r} in tar header") from exc


def _text(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", errors="surrogateescape")


def _parse_pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    at = 0
    while at < len(data):
        space = data.find(b" ", at)
        if space < 0:
            break
        try:
            length = int(data[at:space])
        except ValueError as exc:
            raise TarFormatError("invalid pax record length") from exc
        if length <= 0 or at + length > len(data):
            raise TarFormatError("invalid pax record length")
        record = data[space + 1 : at + length - 1]
        key, sep, value = record.partition(b"=")
        if sep:
            records[key.decode("utf-8", errors="replace")] = value.decode(
                "utf-8", errors="surrogateescape"
            )
        at += length
    return records


class TarReader:
    """Iterates the entries of a tar stream; the data of the current entry can be read once."""

    def __init__(self, stream: _Readable) -> None:
        self._stream = stream
        self._buffer = b""
        self._offset = 0
        self._remaining = 0
        """Unread data bytes of the current entry."""
        self._padding = 0
        """Zero bytes after the current entry's data, up to the next block."""
        self._globals: dict[str, str] = {}

    def _fill(self, count: int) -> bool:
        """Make `count` bytes available at the buffer offset; return False at end of stream."""
        available = len(self._buffer) - self._offset
        if available >= count:
            return True
        parts = [self._buffer[self._offset :]]
        while available < count:
            chunk = self._stream.read(max(_CHUNK, count - available))
            if not chunk:
                self._buffer = b"".join(parts)
                self._offset = 0
                return False
            parts.append(chunk)
            available += len(chunk)
        self._buffer = b"".join(parts)
        self._offset = 0
        return True

    def _skip(self, count: int) -> None:
        available = len(self._buffer) - self._offset
        if count <= available:
            self._offset += count
            return
        count -= available
        self._buffer = b""
        self._offset = 0
        while count > 0:
            chunk = self._stream.read(min(_CHUNK, count) if count > _CHUNK else _CHUNK)
            if not chunk:
                raise TarFormatError("unexpected end of archive inside entry data")
            if len(chunk) > count:
                self._buffer = chunk
                self._offset = count
                return
            count -= len(chunk)

    def read(self, size: int) -> bytes:
        """Return up to `size` more bytes of the current entry's data."""
        size = min(size, self._remaining)
        if size <= 0:
            return b""
        if not self._fill(size):
            raise TarFormatError("unexpected end of archive inside entry data")
        data = self._buffer[self._offset : self._offset + size]
        self._offset += size
        self._remaining -= size
        return data

    def _block(self) -> bytes | None:
        if not self._fill(BLOCK):
            if len(self._buffer) - self._offset == 0:
                return None
            raise TarFormatError("unexpected end of archive inside a header")
        block = self._buffer[self._offset : self._offset + BLOCK]
        self._offset += BLOCK
        return block

    def _meta(self, size: int) -> bytes:
        if size > _MAX_META:
            raise TarFormatError(
                f"extended header of {size} bytes is over the {_MAX_META}-byte limit"
            )
        self._remaining = size
        data = self.read(size)
        self._skip(-size % BLOCK)
        self._remaining = 0
        return data

    def __iter__(self) -> Iterator[TarEntry]:
        """Yield each entry; unread data of the previous entry is skipped first."""
        local: dict[str, str] = {}
        long_name: str | None = None
        long_link: str | None = None
        while True:
            self._skip(self._remaining + self._padding)
            self._remaining = self._padding = 0
            block = self._block()
            if block is None or block == _ZERO_BLOCK:
                return
            stored = _number(block[148:156])
            checksum = sum(block) - sum(block[148:156]) + 8 * 0x20
            if stored != checksum:
                raise TarFormatError("invalid tar header checksum")
            kind = chr(block[156]) if block[156] else "0"
            size = _number(block[124:136])
            if kind in ("x", "g"):
                records = _parse_pax(self._meta(size))
                if kind == "g":
                    self._globals.update(records)
                else:
                    local.update(records)
                continue
            if kind == "L":
                long_name = _text(self._meta(size))
                continue
            if kind == "K":
                long_link = _text(self._meta(size))
                continue
            name = _text(block[0:100])
            if block[257:263] == b"ustar\x00":
                prefix = _text(block[345:500])
                if prefix:
                    name = f"{prefix}/{name}"
            linkname = _text(block[157:257])
            merged = {**self._globals, **local} if local or self._globals else {}
            if long_name is not None:
                name = long_name
            if long_link is not None:
                linkname = long_link
            if merged:
                name = merged.get("path", name)
                linkname = merged.get("linkpath", linkname)
                if "size" in merged:
                    try:
                        size = int(merged["size"])
                    except ValueError as exc:
                        raise TarFormatError("invalid pax size") from exc
            local = {}
            long_name = long_link = None
            if kind in _REGULAR_TYPES:
                kind = REGULAR
            if kind in (HARDLINK, SYMLINK, DIRECTORY, "3", "4", "6"):
                # No data follows these types, whatever the size field contains (as tarfile reads them).
                size = 0
            self._remaining = size
            self._padding = -size % BLOCK
            yield TarEntry(
                name=name, kind=kind, size=size, mode=_number(block[100:108]), linkname=linkname
            )
