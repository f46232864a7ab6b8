"""Go modules compiled into ELF executables, from the build information the Go linker embeds.

The linker writes a 32-byte header starting with `\\xff Go buildinf:` at the start of the
`.go.buildinfo` section, or near the start of the first writable segment when there is no such
section. The Go version and the module information text that `go version -m` prints follow it. Go 1.18
and later store both strings inline after the header (flag bit 2); older toolchains store pointers
to Go string headers. See the Go source, `src/debug/buildinfo/buildinfo.go`.

The ELF reader here is a small one over `struct` because only the section and program header tables
are needed; pyelftools would parse far more than that for every executable of an image.
"""

from __future__ import annotations

import logging
import re
import struct

from regward.sbom.interface import (
    CatalogContext,
    Cataloger,
    CatalogerResult,
    FileRequest,
    FileSystem,
)
from regward.sbom.model import Package
from regward.sbom.purls import golang_purl, make_purl

logger = logging.getLogger(__name__)

ELF_MAGIC = b"\x7fELF"
BUILDINFO_MAGIC = b"\xff Go buildinf:"
_BUILDINFO_ALIGN = 16
_BUILDINFO_HEADER = 32
_SEARCH_WINDOW = 64 * 1024
_FLAG_BIG_ENDIAN = 0x1
_FLAG_INLINE = 0x2
_PT_LOAD = 1
_PF_W = 0x2
_SHT_NOBITS = 8
DEVEL = "(devel)"
_MAX_STRING = 16 * 1024 * 1024

_LDFLAGS_VERSION = (
    re.compile(
        r"\.[a-zA-Z0-9]*(?:[rR]elease)?(?:[gG]it)?(?:[bB]uild)?[vV]er(?:sion)?="
        r"(?:\S+/)*(?P<version>v?\d+\.\d+\.\d+[-\w]*)"
    ),
    re.compile(r"\.[a-zA-Z0-9]*[tT]ag=(?:\S+/)*(?P<version>v?\d+\.\d+\.\d+[-\w]*)"),
)


class _Elf:
    """The headers of an ELF file needed to map virtual addresses to file offsets."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 64 or not data.startswith(ELF_MAGIC):
            raise ValueError("not an ELF file")
        elf_class, encoding = data[4], data[5]
        if elf_class not in (1, 2) or encoding not in (1, 2):
            raise ValueError("unknown ELF class or data encoding")
        self.data = data
        self.is64 = elf_class == 2
        self.order = "<" if encoding == 1 else ">"
        o = self.order
        if self.is64:
            (phoff, shoff) = struct.unpack_from(o + "QQ", data, 0x20)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(
                o + "HHHHH", data, 0x36
            )
        else:
            (phoff, shoff) = struct.unpack_from(o + "II", data, 0x1C)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(
                o + "HHHHH", data, 0x2A
            )
        self.segments: list[tuple[int, int, int, int, int]] = []
        for i in range(phnum):
            at = phoff + i * phentsize
            if self.is64:
                if at + 56 > len(data):
                    break
                p_type, p_flags, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
                    o + "IIQQQQ", data, at
                )
            else:
                if at + 32 > len(data):
                    break
                p_type, p_offset, p_vaddr, _, p_filesz, _, p_flags = struct.unpack_from(
                    o + "IIIIIII", data, at
                )
            self.segments.append((p_type, p_flags, p_offset, p_vaddr, p_filesz))
        self.sections: dict[str, tuple[int, int, int, int]] = {}
        self._read_sections(shoff, shentsize, shnum, shstrndx)

    def _read_sections(self, shoff: int, shentsize: int, shnum: int, shstrndx: int) -> None:
        o = self.order
        raw: list[tuple[int, int, int, int, int]] = []
        size = 64 if self.is64 else 40
        if shoff == 0 or shentsize < size or shoff + shnum * shentsize > len(self.data):
            return
        for i in range(shnum):
            at = shoff + i * shentsize
            if self.is64:
                name, sh_type, _, addr, offset, sh_size = struct.unpack_from(
                    o + "IIQQQQ", self.data, at
                )
            else:
                name, sh_type, _, addr, offset, sh_size = struct.unpack_from(
                    o + "IIIIII", self.data, at
                )
            raw.append((name, sh_type, addr, offset, sh_size))
        if shstrndx >= len(raw):
            return
        _, _, _, str_offset, str_size = raw[shstrndx]
        strtab = self.data[str_offset : str_offset + str_size]
        for name_at, sh_type, addr, offset, sh_size in raw:
            end = strtab.find(b"\x00", name_at)
            name = strtab[name_at:end].decode("ascii", errors="replace") if end >= 0 else ""
            self.sections[name] = (sh_type, addr, offset, sh_size)

    def data_start(self) -> int | None:
        """Return the file offset where the build info search starts, as Go's debug/buildinfo."""
        section = self.sections.get(".go.buildinfo")
        if section is not None and section[0] != _SHT_NOBITS:
            return section[2]
        for p_type, p_flags, p_offset, _, _ in self.segments:
            if p_type == _PT_LOAD and p_flags & _PF_W:
                return p_offset
        return None

    def read_at_address(self, address: int, size: int) -> bytes:
        """Return `size` bytes at virtual address `address`, or raise `ValueError`."""
        for p_type, _, p_offset, p_vaddr, p_filesz in self.segments:
            if p_type == _PT_LOAD and p_vaddr <= address and address + size <= p_vaddr + p_filesz:
                start = p_offset + address - p_vaddr
                return self.data[start : start + size]
        raise ValueError(f"address {address:#x} is outside the file's segments")


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while at < len(data) and shift < 64:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
    raise ValueError("invalid varint")


def _read_pointer_string(elf: _Elf, pointer: int, ptr_size: int, order: str) -> str:
    fmt = order + ("Q" if ptr_size == 8 else "I")
    header = elf.read_at_address(pointer, 2 * ptr_size)
    (data_address,) = struct.unpack_from(fmt, header, 0)
    (length,) = struct.unpack_from(fmt, header, ptr_size)
    if length > _MAX_STRING:
        raise ValueError("string in build info is too long")
    return elf.read_at_address(data_address, length).decode("utf-8", errors="replace")


def read_buildinfo(data: bytes) -> tuple[str, str] | None:
    """Return `(go version, module info text)` of a Go ELF executable, or `None` if it has none.

    Raises:
        ValueError: the ELF headers or the build info are malformed.
    """
    elf = _Elf(data)
    start = elf.data_start()
    if start is None:
        return None
    window = data[start : start + _SEARCH_WINDOW]
    at = 0
    while True:
        found = window.find(BUILDINFO_MAGIC, at)
        if found < 0 or len(window) - found < _BUILDINFO_HEADER:
            return None
        if found % _BUILDINFO_ALIGN == 0:
            break
        at = found + 1
    header = window[found : found + _BUILDINFO_HEADER]
    ptr_size, flags = header[14], header[15]
    if flags & _FLAG_INLINE:
        body_at = start + found + _BUILDINFO_HEADER
        length, at = _uvarint(data, body_at)
        version = data[at : at + length].decode("utf-8", errors="replace")
        at += length
        length, at = _uvarint(data, at)
        if length > _MAX_STRING:
            raise ValueError("module info in build info is too long")
        modinfo = data[at : at + length].decode("utf-8", errors="replace")
    else:
        if ptr_size not in (4, 8):
            raise ValueError(f"invalid pointer size {ptr_size} in build info")
        order = ">" if flags & _FLAG_BIG_ENDIAN else "<"
        fmt = order + ("Q" if ptr_size == 8 else "I")
        (version_ptr,) = struct.unpack_from(fmt, header, 16)
        (modinfo_ptr,) = struct.unpack_from(fmt, header, 16 + ptr_size)
        version = _read_pointer_string(elf, version_ptr, ptr_size, order)
        modinfo = _read_pointer_string(elf, modinfo_ptr, ptr_size, order)
    # The module info is wrapped in 16-byte sentinels (cmd/go/internal/modload).
    if len(modinfo) >= 33 and modinfo[-17] == "\n":
        modinfo = modinfo[16:-16]
    else:
        modinfo = ""
    if not version:
        return None
    return version, modinfo


def reduce_go_binary(path: str, data: bytes) -> bytes | None:
    """Keep only the Go version and module info of an executable; drop non-Go executables."""
    found = read_buildinfo(data)
    if found is None:
        return None
    version, modinfo = found
    return version.encode() + b"\x00" + modinfo.encode()


class _Module:
    __slots__ = ("path", "version")

    def __init__(self, path: str, version: str) -> None:
        self.path = path
        self.version = version


def _parse_modinfo(text: str) -> tuple[str, _Module | None, list[_Module], dict[str, str]]:
    """Parse the `go version -m` text: (path, main module, dependencies, build settings)."""
    path = ""
    main: _Module | None = None
    deps: list[_Module] = []
    settings: dict[str, str] = {}
    last: _Module | None = None
    for line in text.splitlines():
        fields = line.split("\t")
        kind = fields[0]
        if kind == "path" and len(fields) >= 2:
            path = fields[1]
        elif kind == "mod" and len(fields) >= 3:
            main = _Module(fields[1], fields[2])
            last = main
        elif kind == "dep" and len(fields) >= 3:
            last = _Module(fields[1], fields[2])
            deps.append(last)
        elif kind == "dep" and len(fields) == 2:
            last = _Module(fields[1], "")
            deps.append(last)
        elif kind == "=>" and len(fields) >= 3 and last is not None:
            # A replace directive: the replacement is what was compiled in.
            last.path, last.version = fields[1], fields[2]
        elif kind == "build" and len(fields) >= 2:
            key, _, value = fields[1].partition("=")
            settings[key] = value
    return path, main, deps, settings


def _version_from_ldflags(ldflags: str, main_path: str) -> str:
    owner = r"(?:main|" + re.escape(main_path) + r"/\S*)"
    for pattern in _LDFLAGS_VERSION:
        found = re.search(owner + pattern.pattern, ldflags)
        if found is not None:
            version = found.group("version")
            return version if version.startswith("v") else "v" + version
    return ""


def _pseudo_version(revision: str, timestamp: str) -> str:
    """Return the `v0.0.0-<UTC yyyymmddhhmmss>-<12 hex>` pseudo-version of a VCS revision."""
    digits = re.sub(r"\D", "", timestamp)[:14]
    if len(digits) != 14 or not revision:
        return ""
    return f"v0.0.0-{digits}-{revision[:12]}"


def toolchain_version(go_version: str) -> str:
    """Return the Go version without experiments: `go1.22.1 X:boringcrypto` -> `go1.22.1`."""
    return go_version.split(" ", 1)[0]


class GoBinaryCataloger(Cataloger):
    """Reads the module build information of Go executables."""

    name = "go"

    def requests(self) -> tuple[FileRequest, ...]:
        """Return every executable ELF file, reduced to its build info when read."""
        return (FileRequest(kind=self.name, magic=ELF_MAGIC, large=True, reduce=reduce_go_binary),)

    def catalog(self, fs: FileSystem, context: CatalogContext) -> CatalogerResult:
        """Return the main module, the dependencies and `stdlib` of each Go executable."""
        packages: list[Package] = []
        skipped: list[str] = []
        for indexed in self.matching_files(fs):
            raw_version, _, raw_modinfo = indexed.data.partition(b"\x00")
            packages.extend(
                self._packages(indexed.path, indexed.layer_digest, raw_version, raw_modinfo)
            )
        return CatalogerResult(tuple(packages), tuple(skipped))

    def _packages(
        self, path: str, layer: str, raw_version: bytes, raw_modinfo: bytes
    ) -> list[Package]:
        go_version = toolchain_version(raw_version.decode("utf-8", errors="replace"))
        main_path, main, deps, settings = _parse_modinfo(
            raw_modinfo.decode("utf-8", errors="replace")
        )
        if (main is None and main_path) or (
            main is not None and main.path == "command-line-arguments"
        ):
            devel = [d for d in deps if d.version == DEVEL]
            if len(devel) == 1:
                main = devel[0]
                deps.remove(main)
            else:
                main = _Module(main_path, DEVEL)
        result: list[Package] = []

        def add(name: str, version: str, purl: str) -> None:
            result.append(
                Package(
                    name=name,
                    version=version,
                    type="golang",
                    purl=purl,
                    layer_digest=layer,
                    locations=(path,),
                )
            )

        if main is not None and main.path:
            version = main.version
            if version == DEVEL:
                version = _version_from_ldflags(settings.get("-ldflags", ""), main.path) or version
            # NOTE: syft also takes the first semver-like string anywhere in the binary as the
            # version. That guess is not made here, so such main modules stay "(devel)".
            if version == DEVEL:
                version = (
                    _pseudo_version(settings.get("vcs.revision", ""), settings.get("vcs.time", ""))
                    or version
                )
            add(main.path, version, golang_purl(main.path, version))
        for dep in deps:
            if dep.path:
                add(dep.path, dep.version, golang_purl(dep.path, dep.version))
        if go_version.startswith("go"):
            add(
                "stdlib",
                go_version,
                make_purl("golang", None, "stdlib", go_version.removeprefix("go")),
            )
        return result
