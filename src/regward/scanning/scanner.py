"""Scan images for the gate: catalog once per digest, match against the feed, store the results.

The first decision about a digest under a rule with a `vulnerabilities` section catalogs the image
from the upstream registry, reading and indexing its layers in worker threads. The scanner stores
the catalog, matches it in a worker thread and stores the findings with the feed revision. Later
decisions reuse the stored findings while the feed revision is the same, and match the stored
catalog again when it changed. An image is cataloged again only when its stored catalog is missing.

An image index is scanned through its platform manifests: each one is scanned like an image, and
the index's findings are theirs together.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import aiohttp

from regward.oci.errors import OCIError, RegistryError
from regward.oci.manifest import Manifest
from regward.policy.vulnerabilities import (
    ScanStatus,
    SeverityLevel,
    VulnerabilityFacts,
    VulnerabilityFinding,
)
from regward.sbom.interface import DEFAULT_LIMITS, Catalog, ImageSourceError, LayerError, Limits
from regward.sbom.model import Package
from regward.sbom.registry import RegistryLike, catalog_image
from regward.scanning.feeds import FeedProvider
from regward.store.errors import StoreError
from regward.store.scans import ScanStore, StoredFinding, StoredScan
from regward.vulns import Feed, FeedError, Finding, VulnsError, index_ecosystem, queries_for
from regward.vulns import match_report as match_packages

logger = logging.getLogger(__name__)

SCAN_CONCURRENCY = 2
"""Images cataloged at the same time; each also reads up to two layers at once."""

DEFAULT_SCAN_TIMEOUT = 120.0
"""Seconds a decision waits for a scan; the scan goes on in the background after that."""

RETRY_FAILED_CATALOG_SECONDS = 3600.0
"""How long a stored cataloging failure is reused before the image is cataloged again."""

MAX_INDEX_CHILDREN_SCANNED = 64
"""An index with more platform manifests than this is not scanned."""

_NOT_A_CONTAINER_REMEDY = (
    "push an image whose layers are tar archives (uncompressed, gzip or zstd) that regward can read"
)


@dataclass(frozen=True)
class ScanResult:
    """The vulnerabilities of one manifest, or why they are not known."""

    status: ScanStatus
    findings: tuple[StoredFinding, ...] = ()
    detail: str = ""
    remedy: str = ""
    feed_revision: str = ""
    scanned_at: datetime | None = None
    """When the findings were matched, or last confirmed for the current feed revision; for an
    index, the oldest time of its platform manifests."""

    def facts(self, today: date, now: datetime | None = None) -> VulnerabilityFacts:
        """Return the result as the policy's facts, judged on `today` (and its age at `now`)."""
        return VulnerabilityFacts(
            status=self.status,
            today=today,
            findings=tuple(policy_finding(finding) for finding in self.findings),
            detail=self.detail,
            remedy=self.remedy,
            feed_revision=self.feed_revision,
            scanned_at=self.scanned_at,
            now=now,
        )


@dataclass
class ScanStats:
    """Counters of the scanner's work, for logs, metrics and tests."""

    catalogs: int = 0
    """Images cataloged from the registry."""
    catalog_failures: int = 0
    matches: int = 0
    """Catalogs matched against a feed revision."""
    reused: int = 0
    """Scans served from stored findings, without matching."""


def stored_finding(finding: Finding) -> StoredFinding:
    """Return a matcher finding in the form the store keeps."""
    package = finding.package
    return StoredFinding(
        id=finding.id,
        aliases=finding.aliases,
        package=Package(
            name=package.name, version=package.version, type=package.type, purl=package.purl
        ),
        ecosystem=finding.ecosystem,
        severity=str(finding.severity),
        fixed=finding.fixed,
        summary=finding.summary,
    )


def policy_finding(finding: StoredFinding) -> VulnerabilityFinding:
    """Return a stored finding in the form the policy check reads."""
    try:
        severity = SeverityLevel(finding.severity)
    except ValueError:
        severity = SeverityLevel.UNKNOWN
    return VulnerabilityFinding(
        id=finding.id,
        aliases=finding.aliases,
        package=finding.package.name,
        version=finding.package.version,
        ecosystem=finding.ecosystem,
        severity=severity,
        fixed=finding.fixed,
    )


def index_keys(packages: Iterable[Package]) -> set[tuple[str, str, str]]:
    """Return the (index ecosystem, name, version) keys under which the matcher looks packages up."""
    keys: set[tuple[str, str, str]] = set()
    for package in packages:
        try:
            queries = queries_for(package)
        except (ValueError, VulnsError):
            logger.debug("no index key for %s", package.purl, exc_info=True)
            continue
        for query in queries:
            for ecosystem in query.ecosystems:
                keys.add((index_ecosystem(ecosystem), query.name, query.version))
    return keys


def match_catalog(feed: Feed, catalog: Catalog) -> tuple[StoredFinding, ...]:
    """Match a catalog against a feed; CPU-bound, so async code runs it in a thread."""
    report = match_packages(feed, catalog.packages)
    return tuple(stored_finding(finding) for finding in report.findings)


def _transient(exc: BaseException) -> bool:
    """Tell whether a cataloging error came from the network rather than from the image."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, aiohttp.ClientError | TimeoutError | ConnectionError):
            return True
        if isinstance(current, RegistryError):
            return True
        current = current.__cause__
    return False


class ImageScanner:
    """Scans manifests of one registry for the gate, sharing work between concurrent decisions."""

    def __init__(
        self,
        client: RegistryLike,
        feeds: FeedProvider | None,
        store: ScanStore | None,
        *,
        timeout: float | None = DEFAULT_SCAN_TIMEOUT,
        limits: Limits = DEFAULT_LIMITS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.feeds = feeds
        self.store = store
        self.timeout = timeout
        """Seconds a decision waits for a scan; None waits until the scan ends."""
        self.limits = limits
        self.stats = ScanStats()
        self._clock = clock
        self._slots = asyncio.Semaphore(SCAN_CONCURRENCY)
        self._inflight: dict[tuple[str, str, bool], asyncio.Task[ScanResult]] = {}
        self._background: set[asyncio.Task[None]] = set()

    # -- public ---------------------------------------------------------------------------

    async def feed_revision(self) -> str:
        """Return the current feed revision, or an empty string when no feed is loaded."""
        if self.feeds is None:
            return ""
        try:
            return (await self.feeds.get()).revision
        except FeedError:
            return ""

    async def scan(
        self, repository: str, digest: str, manifest: Manifest, *, max_age: float | None = None
    ) -> ScanResult:
        """Return the vulnerabilities of `repository@digest`, scanning it if needed.

        A stored result for the current feed revision is reused unless it was matched more than
        `max_age` seconds ago. An older one is replaced by matching the stored catalog again.
        """
        if self.feeds is None:
            return ScanResult(
                ScanStatus.UNSCANNED,
                detail="no vulnerability feed is configured",
                remedy="pass --feed PATH_OR_URL to regward serve or regward check",
            )
        try:
            feed = await self.feeds.get()
        except FeedError as exc:
            return ScanResult(
                ScanStatus.UNAVAILABLE, detail=f"the vulnerability feed could not be loaded: {exc}"
            )
        if not manifest.is_index:
            return await self._scan_shared(repository, digest, feed, max_age)
        return await self._scan_index(repository, manifest, feed, max_age)

    def scan_in_background(self, repository: str, digest: str) -> None:
        """Start scanning `repository@digest` without waiting, such as after a push."""
        if self.feeds is None:
            return
        self._track(asyncio.get_running_loop().create_task(self._prefetch(repository, digest)))

    def load_feed_in_background(self) -> None:
        """Start loading the feed, so that the first decision does not wait for it."""
        if self.feeds is None:
            return
        self._track(asyncio.get_running_loop().create_task(self._load_feed()))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _load_feed(self) -> None:
        # A failure is logged by the provider and retried by the next decision.
        await self.feed_revision()

    async def close(self) -> None:
        """Cancel background scans; scans that a decision waits for are cancelled with it."""
        tasks = [*self._background, *self._inflight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- scanning -------------------------------------------------------------------------

    async def _prefetch(self, repository: str, digest: str) -> None:
        try:
            fetched = await self.client.get_manifest(repository, digest)
            result = await self.scan(repository, digest, fetched.manifest)
        except (OCIError, VulnsError) as exc:
            logger.info("background scan of %s@%s failed: %s", repository, digest, exc)
            return
        logger.info(
            "background scan of %s@%s: %s, %d findings",
            repository,
            digest,
            result.status,
            len(result.findings),
        )

    async def _scan_index(
        self, repository: str, index: Manifest, feed: Feed, max_age: float | None = None
    ) -> ScanResult:
        children = [
            child
            for child in index.manifests
            if child.annotations.get("vnd.docker.reference.type") != "attestation-manifest"
            and not (child.platform is not None and child.platform.os == "unknown")
        ]
        if not children:
            return ScanResult(ScanStatus.NOT_APPLICABLE, feed_revision=feed.revision)

        if len(children) > MAX_INDEX_CHILDREN_SCANNED:
            return ScanResult(
                ScanStatus.UNSCANNED,
                detail=(
                    f"the index lists {len(children)} platform manifests, more than "
                    f"{MAX_INDEX_CHILDREN_SCANNED}"
                ),
                remedy="pull the platform manifests by digest",
                feed_revision=feed.revision,
            )
        results = await asyncio.gather(
            *(self._scan_shared(repository, child.digest, feed, max_age) for child in children)
        )

        # One finding per vulnerability and package, whichever platforms contain the package.
        findings: dict[tuple[str, str], StoredFinding] = {}
        for result in results:
            for finding in result.findings:
                findings.setdefault((finding.id, finding.package.purl), finding)
        problems = [
            (child.digest, result)
            for child, result in zip(children, results, strict=True)
            if result.status in (ScanStatus.UNSCANNED, ScanStatus.UNAVAILABLE)
        ]

        status = ScanStatus.SCANNED
        if any(result.status is ScanStatus.UNAVAILABLE for _, result in problems):
            status = ScanStatus.UNAVAILABLE
        elif problems:
            status = ScanStatus.UNSCANNED
        detail = "; ".join(
            f"platform manifest {child}: {result.detail}" for child, result in problems
        )
        remedy = next((result.remedy for _, result in problems if result.remedy), "")
        times = [result.scanned_at for result in results if result.scanned_at is not None]
        scanned_at = min(times) if times and len(times) == len(results) else None
        return ScanResult(
            status, tuple(findings.values()), detail, remedy, feed.revision, scanned_at
        )

    async def _scan_shared(
        self, repository: str, digest: str, feed: Feed, max_age: float | None = None
    ) -> ScanResult:
        """Scan one image manifest, joining a scan of the same digest that is already running."""
        key = (digest, feed.revision, max_age is not None)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._scan_image(repository, digest, feed, max_age)
            )
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except TimeoutError:
            return ScanResult(
                ScanStatus.UNAVAILABLE,
                detail=f"scanning did not finish within {self.timeout:g} s and goes on in the background",
                feed_revision=feed.revision,
            )

    def _finished(self, key: tuple[str, str, bool], task: asyncio.Task[ScanResult]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled() and task.exception() is not None:
            logger.error("scan of %s failed", key[0], exc_info=task.exception())

    async def _scan_image(
        self, repository: str, digest: str, feed: Feed, max_age: float | None = None
    ) -> ScanResult:
        # The steps:
        # (1) read what the store contains about the digest;
        # (2) a recent cataloging failure is reused, so a broken image is not downloaded per pull;
        # (3) findings matched against this feed revision are reused as they are;
        # (4) otherwise catalog the image (when no catalog is stored) and match it again.

        # (1): the stored scan.
        stored: StoredScan | None = None
        if self.store is not None:
            try:
                stored = await asyncio.to_thread(self.store.load, digest)
            except StoreError as exc:
                logger.warning("reading the stored scan of %s failed: %s", digest, exc)
                return ScanResult(
                    ScanStatus.UNAVAILABLE,
                    detail=f"the scan database failed: {exc}",
                    feed_revision=feed.revision,
                )

        # (2): a stored failure.
        if stored is not None and stored.error is not None:
            age = (self._clock() - stored.cataloged_at).total_seconds()
            if age < RETRY_FAILED_CATALOG_SECONDS:
                return ScanResult(
                    ScanStatus.UNSCANNED,
                    detail=stored.error,
                    remedy=_NOT_A_CONTAINER_REMEDY,
                    feed_revision=feed.revision,
                )

        # (3): stored findings for this feed revision, matched at most `max_age` seconds ago.
        if (
            stored is not None
            and stored.catalog is not None
            and stored.feed_revision == feed.revision
            and stored.matched_at is not None
            and (
                max_age is None
                or (self._clock() - stored.matched_at).total_seconds() <= max_age
            )
        ):
            self.stats.reused += 1
            logger.info(
                "reusing the stored scan of %s: %d findings, feed revision %s",
                digest,
                len(stored.findings),
                feed.revision[:12],
            )
            return ScanResult(
                ScanStatus.SCANNED,
                stored.findings,
                feed_revision=feed.revision,
                scanned_at=stored.matched_at,
            )

        # (4): catalog if needed, then match.
        catalog = stored.catalog if stored is not None else None
        if catalog is None:
            async with self._slots:
                outcome = await self._catalog(repository, digest, feed)
            if isinstance(outcome, ScanResult):
                return outcome
            catalog = outcome
        else:
            logger.info(
                "matching the stored catalog of %s against feed revision %s",
                digest,
                feed.revision[:12],
            )
        findings = await asyncio.to_thread(match_catalog, feed, catalog)
        matched_at = self._clock()
        self.stats.matches += 1
        if self.store is not None:
            try:
                await asyncio.to_thread(
                    self.store.save_findings,
                    digest,
                    feed.revision,
                    findings,
                    matched_at=matched_at,
                )
            except StoreError as exc:
                logger.warning("storing the findings of %s failed: %s", digest, exc)
        logger.info(
            "matched %s against feed revision %s: %d findings",
            digest,
            feed.revision[:12],
            len(findings),
        )
        return ScanResult(
            ScanStatus.SCANNED, findings, feed_revision=feed.revision, scanned_at=matched_at
        )

    async def _catalog(self, repository: str, digest: str, feed: Feed) -> Catalog | ScanResult:
        """Catalog the image from the registry and store the catalog or the failure."""
        started = time.perf_counter()
        cataloged_at = self._clock()
        try:
            catalog = await catalog_image(self.client, repository, digest, limits=self.limits)
        except (LayerError, ImageSourceError, OCIError) as exc:
            seconds = time.perf_counter() - started
            self.stats.catalog_failures += 1
            if _transient(exc) or not isinstance(exc, LayerError | ImageSourceError):
                logger.warning("cataloging %s@%s failed: %s", repository, digest, exc)
                return ScanResult(
                    ScanStatus.UNAVAILABLE,
                    detail=f"reading the image from the registry failed: {exc}",
                    feed_revision=feed.revision,
                )
            logger.info("%s@%s cannot be cataloged: %s", repository, digest, exc)
            if self.store is not None:
                try:
                    await asyncio.to_thread(
                        self.store.save_catalog_error,
                        digest,
                        str(exc),
                        cataloged_at=cataloged_at,
                        seconds=seconds,
                    )
                except StoreError as store_exc:
                    logger.warning("storing the failure of %s failed: %s", digest, store_exc)
            return ScanResult(
                ScanStatus.UNSCANNED,
                detail=str(exc),
                remedy=_NOT_A_CONTAINER_REMEDY,
                feed_revision=feed.revision,
            )
        seconds = time.perf_counter() - started
        self.stats.catalogs += 1
        logger.info(
            "cataloged %s@%s: %d packages in %.2f s",
            repository,
            digest,
            len(catalog.packages),
            seconds,
        )
        if self.store is not None:
            try:
                keys = await asyncio.to_thread(index_keys, catalog.packages)
                await asyncio.to_thread(
                    self.store.save_catalog,
                    digest,
                    catalog,
                    cataloged_at=cataloged_at,
                    seconds=seconds,
                    index_keys=keys,
                )
            except StoreError as exc:
                logger.warning("storing the catalog of %s failed: %s", digest, exc)
        return catalog
