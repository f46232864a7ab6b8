"""Scan results per image digest: the catalog (SBOM), the findings, their feed revision and times.

Tables:

- `image_sboms`: one catalog per digest, stored once as compact JSON (see `catalog_to_json`), or
  the reason the image could not be cataloged.
- `image_scans`: the feed revision the catalog was last matched against, and when.
- `image_findings`: the findings of that match, one row per vulnerability and package.
- `package_digests`: an inverted index from (OSV index ecosystem, normalised package name) to the
  digests whose catalog contains that package, so a feed change can find the images it affects.

`ScanStore` methods block; async code calls them through `asyncio.to_thread`. They raise
`StoreError`, never a SQLAlchemy error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from threading import RLock
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    insert,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from regward.sbom.interface import Catalog
from regward.sbom.model import Distro, Package
from regward.store.db import SQLITE_BEGIN_IMMEDIATE
from regward.store.errors import StoreError
from regward.store.models import Base, UtcDateTime

logger = logging.getLogger(__name__)

CATALOG_FORMAT = "regward-catalog"
"""`format` of the stored catalog documents."""

CATALOG_FORMAT_VERSION = 1
"""`version` of the stored catalog documents; a reader rejects other versions."""

SEVERITIES = ("unknown", "low", "medium", "high", "critical")
"""Values allowed in `image_findings.severity`."""

_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
_JSON = JSON().with_variant(JSONB(), "postgresql")
# Rows per INSERT statement, below SQLite's default limit of 32,766 bound parameters.
_INSERT_BATCH = 500


class ImageSbomRow(Base):
    """One row of `image_sboms`: the catalog of one image digest, or why there is none."""

    __tablename__ = "image_sboms"

    digest: Mapped[str] = mapped_column(Text, primary_key=True)
    catalog: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    """The catalog as written by `catalog_to_json`; None when `error` is set."""

    package_count: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16), server_default="catalog")
    """Source of the catalog: `catalog` (regward's cataloging of the layers) or another
    source named by its writer, such as `attested` for a verified SBOM attestation."""

    error: Mapped[str | None] = mapped_column(Text)
    """The reason the image could not be cataloged; None for a catalog."""

    cataloged_at: Mapped[datetime] = mapped_column(UtcDateTime())
    catalog_seconds: Mapped[float] = mapped_column(Float)
    """Wall-clock time the cataloging took, downloads included."""


class ImageScanRow(Base):
    """One row of `image_scans`: the feed revision the digest's catalog was matched against."""

    __tablename__ = "image_scans"

    digest: Mapped[str] = mapped_column(
        Text, ForeignKey("image_sboms.digest", ondelete="CASCADE"), primary_key=True
    )
    feed_revision: Mapped[str] = mapped_column(Text)
    matched_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finding_count: Mapped[int] = mapped_column(Integer)


class ImageFindingRow(Base):
    """One row of `image_findings`: one vulnerability in one package of one digest."""

    __tablename__ = "image_findings"
    __table_args__ = (
        CheckConstraint(
            "severity IN (" + ", ".join(f"'{value}'" for value in SEVERITIES) + ")",
            name="severity",
        ),
        Index("ix_image_findings_digest", "digest"),
        Index("ix_image_findings_vulnerability_id", "vulnerability_id"),
    )

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(Text, ForeignKey("image_scans.digest", ondelete="CASCADE"))
    vulnerability_id: Mapped[str] = mapped_column(Text)
    aliases: Mapped[list[str]] = mapped_column(_JSON)
    package_name: Mapped[str] = mapped_column(Text)
    package_version: Mapped[str] = mapped_column(Text)
    package_type: Mapped[str] = mapped_column(String(32))
    """The purl type: `deb`, `pypi`, …"""

    purl: Mapped[str] = mapped_column(Text)
    ecosystem: Mapped[str] = mapped_column(Text)
    """The OSV ecosystem whose record matched, such as `PyPI` or `Debian:12`."""

    severity: Mapped[str] = mapped_column(String(16))
    fixed: Mapped[list[str]] = mapped_column(_JSON)
    summary: Mapped[str] = mapped_column(Text)


class PackageDigestRow(Base):
    """One row of `package_digests`: a digest whose catalog contains a package of the feed index."""

    __tablename__ = "package_digests"
    __table_args__ = (Index("ix_package_digests_digest", "digest"),)

    ecosystem: Mapped[str] = mapped_column(Text, primary_key=True)
    """The ecosystem under which the feed index files the package (`Debian:12`, `PyPI`)."""

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    """The package name as the feed index stores it (source name for deb and apk)."""

    digest: Mapped[str] = mapped_column(
        Text, ForeignKey("image_sboms.digest", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[str] = mapped_column(Text, primary_key=True)
    """The version the matcher evaluates for this package."""


@dataclass(frozen=True)
class StoredFinding:
    """A finding as stored in `image_findings`."""

    id: str
    aliases: tuple[str, ...]
    package: Package
    """The package, with name, version, type and purl only."""

    ecosystem: str
    severity: str
    """One of `SEVERITIES`."""

    fixed: tuple[str, ...]
    summary: str = ""


@dataclass(frozen=True)
class StoredScan:
    """Everything stored about one digest."""

    digest: str
    catalog: Catalog | None
    """None when the image could not be cataloged (`error` gives the reason)."""

    error: str | None
    cataloged_at: datetime
    catalog_seconds: float
    source: str = "catalog"
    """Source of the catalog; see `ImageSbomRow.source`."""

    feed_revision: str | None = None
    """The revision `findings` were matched against; None when never matched."""

    matched_at: datetime | None = None
    findings: tuple[StoredFinding, ...] = ()


# --- catalog documents ----------------------------------------------------------------------


def _distro_to_json(distro: Distro | None) -> dict[str, str] | None:
    if distro is None:
        return None
    return {"id": distro.id, "versionId": distro.version_id, "prettyName": distro.pretty_name}


def _distro_from_json(value: Any) -> Distro | None:
    if not isinstance(value, dict):
        return None
    return Distro(
        id=str(value.get("id", "")),
        version_id=str(value.get("versionId", "")),
        pretty_name=str(value.get("prettyName", "")),
    )


def catalog_to_json(catalog: Catalog) -> dict[str, Any]:
    """Return a catalog as a JSON value that `catalog_from_json` turns back into an equal catalog."""
    packages: list[dict[str, Any]] = []
    for package in catalog.packages:
        item: dict[str, Any] = {
            "name": package.name,
            "version": package.version,
            "type": package.type,
            "purl": package.purl,
        }
        if package.source_name is not None:
            item["sourceName"] = package.source_name
        if package.source_version is not None:
            item["sourceVersion"] = package.source_version
        if package.layer_digest is not None:
            item["layer"] = package.layer_digest
        if package.locations:
            item["locations"] = list(package.locations)
        if package.distro is not None:
            item["distro"] = _distro_to_json(package.distro)
        packages.append(item)
    return {
        "format": CATALOG_FORMAT,
        "version": CATALOG_FORMAT_VERSION,
        "distro": _distro_to_json(catalog.distro),
        "skipped": list(catalog.skipped),
        "packages": packages,
    }


def catalog_from_json(document: Mapping[str, Any]) -> Catalog:
    """Read a document written by `catalog_to_json`.

    Raises:
        StoreError: the document has another format or version, or is malformed.
    """
    if document.get("format") != CATALOG_FORMAT or document.get("version") != (
        CATALOG_FORMAT_VERSION
    ):
        raise StoreError(
            f"stored catalog has format {document.get('format')!r} version "
            f"{document.get('version')!r}: expected {CATALOG_FORMAT!r} version "
            f"{CATALOG_FORMAT_VERSION}"
        )
    try:
        packages = tuple(
            Package(
                name=str(item["name"]),
                version=str(item["version"]),
                type=str(item["type"]),
                purl=str(item["purl"]),
                source_name=item.get("sourceName"),
                source_version=item.get("sourceVersion"),
                layer_digest=item.get("layer"),
                locations=tuple(str(path) for path in item.get("locations", ())),
                distro=_distro_from_json(item.get("distro")),
            )
            for item in document["packages"]
        )
        skipped = tuple(str(line) for line in document.get("skipped", ()))
    except (KeyError, TypeError) as exc:
        raise StoreError(f"stored catalog is malformed: {exc!r}") from exc
    return Catalog(
        packages=packages, distro=_distro_from_json(document.get("distro")), skipped=skipped
    )


# --- the store ------------------------------------------------------------------------------


class ScanStore:
    """Reads and writes the scan tables through an engine whose schema `Store.migrate` created."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # An in-memory SQLite database is one connection, which threads must not share at once.
        memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
        self._lock: AbstractContextManager[Any] = RLock() if memory else nullcontext()

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        with self._lock, self._engine.connect() as connection:
            yield connection

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
            logger.debug("scan store %s failed", operation, exc_info=True)
            raise StoreError(f"{operation} failed: {detail}") from exc

    def load(self, digest: str) -> StoredScan | None:
        """Return what is stored about `digest`, or None when it was never cataloged.

        Raises:
            StoreError: the query failed or the stored catalog cannot be read.
        """
        with self._errors("load scan"), self._connect() as connection:
            sbom = connection.execute(
                select(ImageSbomRow).where(ImageSbomRow.digest == digest)
            ).first()
            if sbom is None:
                return None
            scan = connection.execute(
                select(ImageScanRow).where(ImageScanRow.digest == digest)
            ).first()
            finding_rows = (
                connection.execute(
                    select(ImageFindingRow)
                    .where(ImageFindingRow.digest == digest)
                    .order_by(ImageFindingRow.id)
                ).all()
                if scan is not None
                else []
            )
        document = sbom.catalog
        catalog = catalog_from_json(document) if document is not None else None
        findings = tuple(
            StoredFinding(
                id=row.vulnerability_id,
                aliases=tuple(row.aliases),
                package=Package(
                    name=row.package_name,
                    version=row.package_version,
                    type=row.package_type,
                    purl=row.purl,
                ),
                ecosystem=row.ecosystem,
                severity=row.severity,
                fixed=tuple(row.fixed),
                summary=row.summary,
            )
            for row in finding_rows
        )
        return StoredScan(
            digest=digest,
            catalog=catalog,
            error=sbom.error,
            cataloged_at=sbom.cataloged_at,
            catalog_seconds=sbom.catalog_seconds,
            source=sbom.source,
            feed_revision=scan.feed_revision if scan is not None else None,
            matched_at=scan.matched_at if scan is not None else None,
            findings=findings,
        )

    def save_catalog(
        self,
        digest: str,
        catalog: Catalog,
        *,
        cataloged_at: datetime,
        seconds: float,
        index_keys: Iterable[tuple[str, str, str]] = (),
        source: str = "catalog",
    ) -> None:
        """Store the catalog of `digest`, replacing anything stored before, findings included.

        Args:
            index_keys: (index ecosystem, normalised name, version) of each package, for the
                `package_digests` index.
            source: where the catalog came from, at most 16 characters (`catalog`, `attested`).

        Raises:
            StoreError: the write failed; nothing was written.
        """
        self._replace_sbom(
            digest,
            {
                "digest": digest,
                "catalog": catalog_to_json(catalog),
                "package_count": len(catalog.packages),
                "source": source,
                "error": None,
                "cataloged_at": cataloged_at,
                "catalog_seconds": seconds,
            },
            sorted(set(index_keys)),
        )

    def save_catalog_error(
        self, digest: str, error: str, *, cataloged_at: datetime, seconds: float
    ) -> None:
        """Record that `digest` could not be cataloged, replacing anything stored before.

        Raises:
            StoreError: the write failed.
        """
        self._replace_sbom(
            digest,
            {
                "digest": digest,
                "catalog": None,
                "package_count": 0,
                "source": "catalog",
                "error": error,
                "cataloged_at": cataloged_at,
                "catalog_seconds": seconds,
            },
            [],
        )

    def _replace_sbom(
        self, digest: str, row: dict[str, Any], index_keys: Sequence[tuple[str, str, str]]
    ) -> None:
        index_rows = [
            {"ecosystem": ecosystem, "name": name, "digest": digest, "version": version}
            for ecosystem, name, version in index_keys
        ]
        with self._errors("save catalog"), self._write() as connection:
            # Deleting the SBOM row cascades to the scan, its findings and the index rows.
            connection.execute(delete(ImageSbomRow).where(ImageSbomRow.digest == digest))
            connection.execute(insert(ImageSbomRow), [row])
            for start in range(0, len(index_rows), _INSERT_BATCH):
                connection.execute(
                    insert(PackageDigestRow), index_rows[start : start + _INSERT_BATCH]
                )

    def save_findings(
        self,
        digest: str,
        feed_revision: str,
        findings: Sequence[StoredFinding],
        *,
        matched_at: datetime,
    ) -> None:
        """Replace the findings of `digest` with the result of matching against `feed_revision`.

        Raises:
            StoreError: the catalog of `digest` is not stored, or the write failed.
        """
        rows = [
            {
                "digest": digest,
                "vulnerability_id": finding.id,
                "aliases": list(finding.aliases),
                "package_name": finding.package.name,
                "package_version": finding.package.version,
                "package_type": finding.package.type,
                "purl": finding.package.purl,
                "ecosystem": finding.ecosystem,
                "severity": finding.severity,
                "fixed": list(finding.fixed),
                "summary": finding.summary,
            }
            for finding in findings
        ]
        with self._errors("save findings"), self._write() as connection:
            connection.execute(delete(ImageScanRow).where(ImageScanRow.digest == digest))
            connection.execute(
                insert(ImageScanRow),
                [
                    {
                        "digest": digest,
                        "feed_revision": feed_revision,
                        "matched_at": matched_at,
                        "finding_count": len(rows),
                    }
                ],
            )
            for start in range(0, len(rows), _INSERT_BATCH):
                connection.execute(insert(ImageFindingRow), rows[start : start + _INSERT_BATCH])

    def digests_for_packages(self, keys: Iterable[tuple[str, str]]) -> set[str]:
        """Return the digests whose catalog contains any of the (index ecosystem, name) keys.

        Raises:
            StoreError: the query failed.
        """
        requested = sorted(set(keys))
        found: set[str] = set()
        with self._errors("look up package digests"), self._connect() as connection:
            for start in range(0, len(requested), _INSERT_BATCH):
                batch = requested[start : start + _INSERT_BATCH]
                query = select(PackageDigestRow.digest).where(
                    tuple_(PackageDigestRow.ecosystem, PackageDigestRow.name).in_(batch)
                )
                found.update(connection.execute(query).scalars())
        return found

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._connect() as connection:
            if connection.dialect.name == "sqlite":
                connection.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
            with connection.begin():
                yield connection
