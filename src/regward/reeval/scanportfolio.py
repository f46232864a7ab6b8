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
from datetime import datetime

from sqlalchemy import select, update
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


class ScanPortfolio:
    """Reads and rewrites scan results through `ScanStore` and the scan tables."""

    def __init__(self, engine: Engine) -> None:
        """Use `engine`, whose database the store's migrations brought up to date."""
        self.engine = engine
        self.scans = ScanStore(engine)

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
        """Return the stored catalog packages of each digest that has a catalog."""
        found: dict[str, Sequence[Package]] = {}
        with self._read("catalog read") as connection:
            for start in range(0, len(digests), _QUERY_BATCH):
                chunk = list(digests[start : start + _QUERY_BATCH])
                rows = connection.execute(
                    select(ImageSbomRow.digest, ImageSbomRow.catalog).where(
                        ImageSbomRow.digest.in_(chunk), ImageSbomRow.catalog.is_not(None)
                    )
                )
                for digest, document in rows:
                    try:
                        found[digest] = catalog_from_json(document).packages
                    except StoreError as exc:
                        logger.warning("stored catalog of %s is unreadable: %s", digest, exc)
        return found

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

    def store_results(self, results: Sequence[DigestResult]) -> None:
        """Store results: changed findings one digest per transaction, the rest in one update."""
        unchanged = [result for result in results if not result.changed]
        if unchanged:
            self._touch(unchanged)
        for result in results:
            if not result.changed:
                continue
            try:
                self.scans.save_findings(
                    result.digest,
                    result.feed_revision,
                    [stored_form(finding) for finding in result.findings],
                    matched_at=result.scanned_at,
                )
            except StoreError as exc:
                # A digest whose catalog was deleted meanwhile has nothing to update.
                logger.debug("storing the result of %s failed: %s", result.digest, exc)

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

    def advance_revision(self, previous: str, revision: str, at: datetime) -> int:
        """Relabel results matched against `previous` as valid for `revision` as of `at`."""
        try:
            immediate = self.engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
            with immediate.begin() as connection:
                changed = connection.execute(
                    update(ImageScanRow)
                    .where(ImageScanRow.feed_revision == previous)
                    .values(feed_revision=revision, matched_at=at)
                    .returning(ImageScanRow.digest)
                ).all()
        except SQLAlchemyError as exc:
            raise ReevalError(f"portfolio revision update failed: {exc}") from exc
        return len(changed)
