"""The cataloger interface, the catalog value type, the resource limits and the sbom error family.

A cataloger declares which files it needs (`FileRequest`), the layer reader keeps only those files
in an in-memory index, and `Cataloger.catalog` turns the indexed files into packages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from regward.errors import RegwardError
from regward.sbom.model import Distro, Package

MiB = 1024 * 1024
GiB = 1024 * MiB


class SbomError(RegwardError):
    """Base class of the errors raised by `regward.sbom`."""


class LayerError(SbomError):
    """A layer could not be read: bad compression, a corrupt tar, a wrong digest, a missing blob."""


class LimitExceededError(LayerError):
    """An image went over one of the caps in `Limits`."""


class ImageSourceError(SbomError):
    """An OCI layout directory or docker-archive file is missing, malformed or has no such image."""


class SbomFormatError(SbomError):
    """An SBOM document is malformed, too large, or in a format regward does not read."""


@dataclass(frozen=True)
class Limits:
    """Caps that bound the work and memory spent on one image or one SBOM document."""

    max_decompressed_bytes: int = 32 * GiB
    """Total tar bytes, after decompression, read from all layers of one image."""
    max_entries: int = 2_000_000
    """Total tar entries over all layers of one image."""
    max_path_length: int = 4096
    """Maximum length of a tar entry name or link target, in characters."""
    max_file_bytes: int = 64 * MiB
    """Largest metadata file (dpkg status, METADATA, package.json, …) read into memory."""
    max_binary_bytes: int = 512 * MiB
    """Largest executable or Java archive read into memory, one at a time."""
    max_index_bytes: int = 2 * GiB
    """Total bytes kept in the in-memory file index of one image."""
    max_symlink_hops: int = 40
    """Symbolic links followed while resolving one path, as Linux's `MAXSYMLINKS`."""
    max_archive_depth: int = 4
    """Nesting depth of Java archives inside Java archives."""
    max_archive_member_bytes: int = 256 * MiB
    """Largest file decompressed out of a Java archive (a nested jar or a metadata file)."""
    max_archive_entries: int = 200_000
    """Entries read from the central directory of one Java archive."""
    max_sbom_bytes: int = 256 * MiB
    """Largest SBOM document `read_sbom` parses."""
    max_sbom_packages: int = 1_000_000
    """Most packages `read_sbom` returns from one document."""


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Catalog:
    """The packages found in one image or SBOM, its distro, and what could not be cataloged."""

    packages: tuple[Package, ...]
    """Packages in a stable order: by type, name, version, then first location."""
    distro: Distro | None = None
    """The distro from `etc/os-release` or `usr/lib/os-release`, when the image has one."""
    skipped: tuple[str, ...] = ()
    """One line per file or layer entry that could not be cataloged, with the reason."""


Reducer = Callable[[str, bytes], bytes | None]
"""Turn a large file into the few bytes a cataloger needs, at index time; `None` drops the file."""


@dataclass(frozen=True)
class FileRequest:
    """A set of files a cataloger reads, chosen by path or by leading bytes."""

    kind: str
    """The name of the cataloger that reads these files; indexed files carry it."""
    pattern: str | None = None
    """Regular expression matched in full against the normalized path (no leading `/`). It must
    contain no capturing groups."""
    magic: bytes | None = None
    """Leading bytes that select an executable file whatever its path, e.g. `b"\\x7fELF"`."""
    large: bool = False
    """Files are executables or archives: `Limits.max_binary_bytes` applies instead of
    `Limits.max_file_bytes`."""
    reduce: Reducer | None = None
    """Applied to the file's bytes when it is read, so the index keeps only what is needed."""


@dataclass(frozen=True)
class IndexedFile:
    """A file kept in the layer index: its path, bytes (or reduced bytes), mode and layer."""

    path: str
    data: bytes
    layer_digest: str
    kind: str
    """`FileRequest.kind` of the request that selected the file."""
    mode: int = 0o644


class FileSystem(Protocol):
    """The merged view of an image's layers that catalogers read."""

    def files(self) -> Iterator[IndexedFile]:
        """Yield every indexed regular file, sorted by path."""
        ...

    def read(self, path: str) -> IndexedFile | None:
        """Return the file at `path` after following symbolic links inside the root, or `None`."""
        ...

    @property
    def skipped(self) -> tuple[str, ...]:
        """Entries the layer reader could not index, with the reason."""
        ...


@dataclass(frozen=True)
class CatalogerResult:
    """The packages and skip reasons from one cataloger."""

    packages: tuple[Package, ...] = ()
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatalogContext:
    """Facts about the image that catalogers need besides their own files."""

    distro: Distro | None = None
    limits: Limits = field(default_factory=Limits)


class Cataloger(ABC):
    """Finds the packages of one ecosystem in an image's file index."""

    name: str = ""
    """A short name used in log lines and skip reasons: `dpkg`, `python`, …"""

    @abstractmethod
    def requests(self) -> tuple[FileRequest, ...]:
        """Return the files this cataloger reads."""

    @abstractmethod
    def catalog(self, fs: FileSystem, context: CatalogContext) -> CatalogerResult:
        """Return the packages recorded in the files this cataloger requested."""

    def matching_files(self, fs: FileSystem) -> list[IndexedFile]:
        """Return the indexed files that this cataloger's requests selected, sorted by path."""
        return [indexed for indexed in fs.files() if indexed.kind == self.name]
