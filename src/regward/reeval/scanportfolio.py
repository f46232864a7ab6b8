"""The `Portfolio` over the gate's scan tables: catalogs, findings and the package index.

The gate's scanner writes one catalog per image manifest digest (`image_sboms`), the findings of
its last match with the feed revision and time (`image_scans`, `image_findings`) and the
inverted index from (ecosystem, package) to digests (`package_digests`). This adapter lets the
scheduler read and rewrite those rows in batches. `image_scans.matched_at` is the scan time of a
result: when it was last matched, or last confirmed for a new revision by a delta.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from regward.reeval.jobs import ReevalError
from regward.reeval.rematch import DigestResult, FindingLike, PackageKey
from regward.sbom.model import Package
from regward.store.db import SQLITE_BEGIN_IMMEDIATE
from regward.store.errors import StoreError
from regward.store.scans import (
    ImageFindingRow,
    ImageSbomRow,
    ImageScanRow,
    ScanStore,
    StoredFinding,
    catalog_from_json,
)

logger = logging.getLogger(__name__)

_QUERY_BATCH = 500


def stored_form(finding: FindingLike, ecosystem: str = "", summary: str = "") -> StoredFinding:
    """Return a finding in the form the scan tables keep."""
    package = finding.package
    aliases = getattr(finding, "aliases", ())
    return StoredFinding(
        id=finding.id,
        aliases=tuple(aliases),
        package=Package(
            name=package.name, version=package.version, type=package.type, purl=package.purl
        ),
        ecosystem=getattr(finding, "ecosystem", ecosystem) or ecosystem,
        severity=str(finding.severity),
        fixed=finding.fixed,
        summary=getattr(finding, "summary", summary) or summary,
    )


def _scan_row(result: DigestResult) -> dict[str, Any]:
    return {
        "digest": result.digest,
        "feed_revision": result.feed_revision,
        "matched_at": result.scanned_at,
        "finding_count": len(result.findings),
    }


def _row_key(digest: str, finding: FindingLike) -> tuple[str, ...]:
    """Return what sets two finding rows of a digest apart, severity, fixes and aliases included."""
    return (
        digest,
        finding.id,
        finding.package.name,
        finding.package.version,
        finding.package.purl,
        str(finding.severity),
        "\n".join(finding.fixed),
        "\n".join(getattr(finding, "aliases", ())),
    )


def _finding_row(digest: str, finding: FindingLike) -> dict[str, Any]:
    stored = stored_form(finding)
    return {
        "digest": digest,
        "vulnerability_id": stored.id,
        "aliases": list(stored.aliases),
        "package_name": stored.package.name,
        "package_version": stored.package.version,
        "package_type": stored.package.type,
        "purl": stored.package.purl,
        "ecosystem": stored.ecosystem,
        "severity": stored.severity,
        "fixed": list(stored.fixed),
        "summary": stored.summary,
    }


class ScanPortfolio:
    """Reads and rewrites scan results through `ScanStore` and the scan tables."""

    def __init__(self, engine: Engine, *, max_cached_catalogs: int = 200_000) -> None:
        """Use `engine`, whose database the store's migrations brought up to date.

        Args:
            engine: the gate's database.
            max_cached_catalogs: catalogs kept in memory between passes.
        """
        self.engine = engine
        self.scans = ScanStore(engine)
        self.max_cached_catalogs = max_cached_catalogs
        self._catalogs: dict[str, tuple[datetime, tuple[Package, ...]]] = {}
        self._packages: dict[tuple[object, ...], Package] = {}

    @contextmanager
    def _read(self, operation: str) -> Iterator[Connection]:
        try:
            with self.engine.connect() as connection:
                yield connection
        except SQLAlchemyError as exc:
            logger.debug("portfolio %s failed", operation, exc_info=True)
            raise ReevalError(f"portfolio {operation} failed: {exc}") from exc

    def digests_for_keys(self, keys: Collection[PackageKey]) -> list[str]:
        """Return the cataloged digests indexed under any of `keys`, sorted."""
        try:
            return sorted(self.scans.digests_for_packages(keys))
        except StoreError as exc:
            raise ReevalError(f"portfolio lookup failed: {exc}") from exc

    def digests_after(self, after: str | None, limit: int) -> list[str]:
        """Return up to `limit` cataloged digests after `after`, sorted."""
        query = (
            select(ImageSbomRow.digest)
            .where(ImageSbomRow.catalog.is_not(None))
            .order_by(ImageSbomRow.digest)
            .limit(limit)
        )
        if after is not None:
            query = query.where(ImageSbomRow.digest > after)
        with self._read("listing") as connection:
            return list(connection.execute(query).scalars())

    def packages(self, digests: Sequence[str]) -> Mapping[str, Sequence[Package]]:
        """Return the stored catalog packages of each digest that has a catalog.

        Catalogs already read are taken from memory while their `cataloged_at` is unchanged.
        The packages carry no layer or file paths, which matching does not read, so equal
        packages of different images are one shared object.
        """
        found: dict[str, Sequence[Package]] = {}
        with self._read("catalog read") as connection:
            for start in range(0, len(digests), _QUERY_BATCH):
                chunk = list(digests[start : start + _QUERY_BATCH])
                times = connection.execute(
                    select(ImageSbomRow.digest, ImageSbomRow.cataloged_at).where(
                        ImageSbomRow.digest.in_(chunk), ImageSbomRow.catalog.is_not(None)
                    )
                )
                missing: list[str] = []
                for digest, cataloged_at in times:
                    cached = self._catalogs.get(digest)
                    if cached is not None and cached[0] == cataloged_at:
                        found[digest] = cached[1]
                    else:
                        missing.append(digest)
                if not missing:
                    continue
                rows = connection.execute(
                    select(
                        ImageSbomRow.digest, ImageSbomRow.cataloged_at, ImageSbomRow.catalog
                    ).where(ImageSbomRow.digest.in_(missing))
                )
                for digest, cataloged_at, document in rows:
                    try:
                        packages = self._interned(catalog_from_json(document).packages)
                    except StoreError as exc:
                        logger.warning("stored catalog of %s is unreadable: %s", digest, exc)
                        continue
                    found[digest] = packages
                    self._remember(digest, cataloged_at, packages)
        return found

    def _interned(self, packages: Sequence[Package]) -> tuple[Package, ...]:
        interned: list[Package] = []
        for package in packages:
            key = (
                package.type,
                package.name,
                package.version,
                package.purl,
                package.source_name,
                package.source_version,
                package.distro,
            )
            shared = self._packages.get(key)
            if shared is None:
                shared = replace(package, layer_digest=None, locations=())
                self._packages[key] = shared
            interned.append(shared)
        return tuple(interned)

    def _remember(self, digest: str, cataloged_at: datetime, packages: tuple[Package, ...]) -> None:
        if len(self._catalogs) >= self.max_cached_catalogs:
            # Forgetting everything keeps the bound without tracking use; a pass refills it.
            self._catalogs.clear()
            self._packages.clear()
        self._catalogs[digest] = (cataloged_at, packages)

    def stored_findings(self, digests: Sequence[str]) -> Mapping[str, tuple[FindingLike, ...]]:
        """Return the stored findings of each digest that has a match result."""
        found: dict[str, list[FindingLike]] = {}
        with self._read("findings read") as connection:
            for start in range(0, len(digests), _QUERY_BATCH):
                chunk = list(digests[start : start + _QUERY_BATCH])
                for digest in connection.execute(
                    select(ImageScanRow.digest).where(ImageScanRow.digest.in_(chunk))
                ).scalars():
                    found.setdefault(digest, [])
                rows = connection.execute(
                    select(ImageFindingRow)
                    .where(ImageFindingRow.digest.in_(chunk))
                    .order_by(ImageFindingRow.id)
                )
                for row in rows:
                    found.setdefault(row.digest, []).append(
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
                    )
        return {digest: tuple(findings) for digest, findings in found.items()}

    def stored_revisions(self, digests: Sequence[str]) -> Mapping[str, str]:
        """Return the feed revision of each digest's stored match result."""
        found: dict[str, str] = {}
        with self._read("revision read") as connection:
            for start in range(0, len(digests), _QUERY_BATCH):
                chunk = list(digests[start : start + _QUERY_BATCH])
                rows = connection.execute(
                    select(ImageScanRow.digest, ImageScanRow.feed_revision).where(
                        ImageScanRow.digest.in_(chunk)
                    )
                )
                found.update({row[0]: row[1] for row in rows})
        return found

    def store_results(self, results: Sequence[DigestResult]) -> None:
        """Store a batch of results in one transaction.

        Results whose findings changed replace their `image_scans` row and findings, written as
        `ScanStore.save_findings` writes them; the others only get the new revision and time.
        """
        unchanged = [result for result in results if not result.changed]
        patched = [r for r in results if r.changed and r.replaces is not None]
        changed = [r for r in results if r.changed and r.replaces is None]
        if unchanged:
            self._touch(unchanged)
        if patched:
            self._patch(patched)
        if not changed:
            return
        try:
            immediate = self.engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
            with immediate.begin() as connection:
                digests = [result.digest for result in changed]
                present: set[str] = set()
                for start in range(0, len(digests), _QUERY_BATCH):
                    chunk = digests[start : start + _QUERY_BATCH]
                    # Deleting the scan row cascades to its findings.
                    connection.execute(delete(ImageScanRow).where(ImageScanRow.digest.in_(chunk)))
                    present.update(
                        connection.execute(
                            select(ImageSbomRow.digest).where(ImageSbomRow.digest.in_(chunk))
                        ).scalars()
                    )
                # A digest whose catalog was deleted meanwhile has nothing to update.
                kept = [result for result in changed if result.digest in present]
                if kept:
                    connection.execute(insert(ImageScanRow), [_scan_row(r) for r in kept])
                rows = [_finding_row(r.digest, f) for r in kept for f in r.findings]
                for start in range(0, len(rows), _QUERY_BATCH):
                    connection.execute(insert(ImageFindingRow), rows[start : start + _QUERY_BATCH])
        except SQLAlchemyError as exc:
            raise ReevalError(f"portfolio result write failed: {exc}") from exc

    def _patch(self, results: Sequence[DigestResult]) -> None:
        """Write only the findings that differ from the stored ones (`DigestResult.replaces`)."""
        removed: list[dict[str, Any]] = []
        added: list[dict[str, Any]] = []
        for result in results:
            assert result.replaces is not None
            before = {_row_key(result.digest, f): f for f in result.replaces}
            after = {_row_key(result.digest, f): f for f in result.findings}
            removed.extend(
                {
                    "d": result.digest,
                    "v": key[1],
                    "n": key[2],
                    "ver": key[3],
                    "p": key[4],
                }
                for key in before.keys() - after.keys()
            )
            added.extend(
                _finding_row(result.digest, finding)
                for key, finding in after.items()
                if key not in before
            )
        try:
            immediate = self.engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
            with immediate.begin() as connection:
                if removed:
                    connection.execute(
                        delete(ImageFindingRow).where(
                            ImageFindingRow.digest == bindparam("d"),
                            ImageFindingRow.vulnerability_id == bindparam("v"),
                            ImageFindingRow.package_name == bindparam("n"),
                            ImageFindingRow.package_version == bindparam("ver"),
                            ImageFindingRow.purl == bindparam("p"),
                        ),
                        removed,
                    )
                for start in range(0, len(added), _QUERY_BATCH):
                    connection.execute(insert(ImageFindingRow), added[start : start + _QUERY_BATCH])
                connection.execute(
                    update(ImageScanRow)
                    .where(ImageScanRow.digest == bindparam("d"))
                    .values(
                        feed_revision=bindparam("r"),
                        matched_at=bindparam("t"),
                        finding_count=bindparam("c"),
                    ),
                    [
                        {
                            "d": r.digest,
                            "r": r.feed_revision,
                            "t": r.scanned_at,
                            "c": len(r.findings),
                        }
                        for r in results
                    ],
                )
        except SQLAlchemyError as exc:
            raise ReevalError(f"portfolio result write failed: {exc}") from exc

    def _touch(self, results: Sequence[DigestResult]) -> None:
        """Rewrite the revision and scan time of results whose findings did not change."""
        groups: dict[tuple[str, datetime], list[str]] = {}
        for result in results:
            groups.setdefault((result.feed_revision, result.scanned_at), []).append(result.digest)
        try:
            immediate = self.engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
            with immediate.begin() as connection:
                for (revision, at), digests in groups.items():
                    for start in range(0, len(digests), _QUERY_BATCH):
                        connection.execute(
                            update(ImageScanRow)
                            .where(ImageScanRow.digest.in_(digests[start : start + _QUERY_BATCH]))
                            .values(feed_revision=revision, matched_at=at)
                        )
        except SQLAlchemyError as exc:
            raise ReevalError(f"portfolio result update failed: {exc}") from exc

    def advance_revision(
        self, previous: str, revision: str, at: datetime, *, matched_before: datetime
    ) -> int:
        """Relabel results of `previous` scanned by `matched_before` as valid for `revision`."""
        try:
            immediate = self.engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
            with immediate.begin() as connection:
                changed = connection.execute(
                    update(ImageScanRow)
                    .where(
                        ImageScanRow.feed_revision == previous,
                        ImageScanRow.matched_at <= matched_before,
                    )
                    .values(feed_revision=revision, matched_at=at)
                    .returning(ImageScanRow.digest)
                ).all()
        except SQLAlchemyError as exc:
            raise ReevalError(f"portfolio revision update failed: {exc}") from exc
        return len(changed)
