"""RPM packages from the rpm database.

`rpmdb.sqlite` (rpm 4.16 and later; Fedora, RHEL 9, openSUSE) is read with the standard library's
sqlite3, loaded from memory with `Connection.deserialize`. Each row of its `Packages` table is an
rpm header blob: a big-endian entry count and data size, then 16-byte index entries (tag, type,
offset, count) and the data store (rpm's `headerImport`, lib/header.c).

The Berkeley DB `Packages` and NDB `Packages.db` formats are reported as not cataloged: no
maintained pure-Python reader of either exists, and the `berkeleydb` bindings need the Oracle C
library.
"""

from __future__ import annotations

import logging
import sqlite3
import struct

from regward.sbom.interface import (
    CatalogContext,
    Cataloger,
    CatalogerResult,
    FileRequest,
    FileSystem,
)
from regward.sbom.model import Package
from regward.sbom.purls import distro_qualifier, make_purl

logger = logging.getLogger(__name__)

TAG_NAME = 1000
TAG_VERSION = 1001
TAG_RELEASE = 1002
TAG_EPOCH = 1003
TAG_ARCH = 1022
TAG_SOURCERPM = 1044
_TYPE_INT32 = 4
_TYPE_STRING = 6
_TYPE_STRING_ARRAY = 8
_TYPE_I18NSTRING = 9
_READ_TAGS = {TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH, TAG_ARCH, TAG_SOURCERPM}
_MAX_ENTRIES = 0xFFFF
_MAX_DATA = 256 * 1024 * 1024
_SQLITE_MAGIC = b"SQLite format 3\x00"


def parse_header_blob(blob: bytes) -> dict[int, str | int]:
    """Return the name, version, release, epoch, arch and source rpm tags of one header blob.

    Raises:
        ValueError: the blob is truncated or its counts are out of range.
    """
    if len(blob) < 8:
        raise ValueError("rpm header blob is shorter than 8 bytes")
    count, data_size = struct.unpack_from(">II", blob, 0)
    if not 0 < count <= _MAX_ENTRIES or data_size > _MAX_DATA:
        raise ValueError(f"rpm header counts out of range: {count} entries, {data_size} bytes")
    store_at = 8 + 16 * count
    if store_at + data_size > len(blob):
        raise ValueError("rpm header blob is truncated")
    store = blob[store_at : store_at + data_size]
    tags: dict[int, str | int] = {}
    for i in range(count):
        tag, kind, offset, items = struct.unpack_from(">IIiI", blob, 8 + 16 * i)
        if tag not in _READ_TAGS or offset < 0 or offset >= len(store):
            continue
        if kind in (_TYPE_STRING, _TYPE_I18NSTRING, _TYPE_STRING_ARRAY):
            end = store.find(b"\x00", offset)
            if end < 0:
                raise ValueError(f"rpm header tag {tag} is not NUL-terminated")
            tags[tag] = store[offset:end].decode("utf-8", errors="replace")
        elif kind == _TYPE_INT32 and items >= 1 and offset + 4 <= len(store):
            tags[tag] = struct.unpack_from(">i", store, offset)[0]
    return tags


def read_rpmdb_sqlite(data: bytes) -> list[dict[int, str | int]]:
    """Return the parsed header of every package in an `rpmdb.sqlite` file.

    Raises:
        ValueError: the file is not an SQLite database with a `Packages` table.
    """
    if not data.startswith(_SQLITE_MAGIC):
        raise ValueError("not an SQLite database")
    if len(data) > 19 and data[18] == 2:
        # Write-ahead-log mode: read the main file as a rollback-journal database instead.
        data = data[:18] + b"\x01\x01" + data[20:]
    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(data)
        rows = connection.execute("SELECT blob FROM Packages").fetchall()
    except sqlite3.Error as exc:
        raise ValueError(f"cannot read the Packages table: {exc}") from exc
    finally:
        connection.close()
    headers = []
    for (blob,) in rows:
        if isinstance(blob, bytes):
            headers.append(parse_header_blob(blob))
    return headers


class RpmCataloger(Cataloger):
    """Reads the rpm package database."""

    name = "rpm"

    def requests(self) -> tuple[FileRequest, ...]:
        """Return the rpm databases in the three places rpm has kept them."""
        return (
            FileRequest(
                kind=self.name,
                pattern=r"(?:.*/)?(?:var/lib|usr/share|usr/lib/sysimage)/rpm/"
                r"(?:Packages|Packages\.db|rpmdb\.sqlite)",
                large=True,
            ),
        )

    def catalog(self, fs: FileSystem, context: CatalogContext) -> CatalogerResult:
        """Return one package per header in `rpmdb.sqlite`; list the other formats as skipped."""
        packages: list[Package] = []
        skipped: list[str] = []
        for indexed in self.matching_files(fs):
            if not indexed.path.endswith("rpmdb.sqlite"):
                kind = "NDB" if indexed.path.endswith(".db") else "Berkeley DB"
                skipped.append(f"{indexed.path}: {kind} rpm database not cataloged (no reader)")
                continue
            try:
                headers = read_rpmdb_sqlite(indexed.data)
            except ValueError as exc:
                skipped.append(f"{indexed.path}: invalid rpm database: {exc}")
                continue
            for tags in headers:
                package = self._package(tags, indexed.path, indexed.layer_digest, context)
                if package is not None:
                    packages.append(package)
        return CatalogerResult(tuple(packages), tuple(skipped))

    @staticmethod
    def _package(
        tags: dict[int, str | int], path: str, layer: str, context: CatalogContext
    ) -> Package | None:
        name = str(tags.get(TAG_NAME, ""))
        version = str(tags.get(TAG_VERSION, ""))
        release = str(tags.get(TAG_RELEASE, ""))
        if not name or not version or name == "gpg-pubkey":
            # gpg-pubkey entries are imported signing keys, not installed software.
            return None
        epoch = tags.get(TAG_EPOCH)
        full_version = f"{version}-{release}" if release else version
        if isinstance(epoch, int):
            full_version = f"{epoch}:{full_version}"
        source_rpm = str(tags.get(TAG_SOURCERPM, ""))
        distro = context.distro
        namespace = distro.id if distro is not None else ""
        if namespace == "rhel":
            namespace = "redhat"
        purl = make_purl(
            "rpm",
            namespace or None,
            name,
            f"{version}-{release}" if release else version,
            {
                "arch": str(tags.get(TAG_ARCH, "")),
                "epoch": str(epoch) if isinstance(epoch, int) else "",
                "upstream": source_rpm,
                "distro": distro_qualifier(distro),
            },
        )
        return Package(
            name=name,
            version=full_version,
            type="rpm",
            purl=purl,
            source_name=_source_name(source_rpm) or None,
            layer_digest=layer,
            locations=(path,),
            distro=distro,
        )


def _source_name(source_rpm: str) -> str:
    """Return the name in a source rpm file name: `openssl-3.0.7-24.el9.src.rpm` -> `openssl`."""
    stem = source_rpm.removesuffix(".rpm").removesuffix(".src").removesuffix(".nosrc")
    parts = stem.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else ""
