"""Re-match stored SBOMs against a new feed, for only the digests a feed change can affect.

Matching is a function of a package and the feed, so `Rematcher` keeps the findings of each
distinct package across images and across feed revisions. A package is identified by name,
version, type, purl, source and distro, because an image's layer and file paths do not change
the result. A feed change evicts only the packages filed under the (ecosystem, name) keys that
the changed records name, and every other package keeps its findings. A full pass can clear the
memo (`set_feed(feed, None)`).

NOTE: a changed record that only adds an alias (no affected entry for a package) can change how
findings of other records merge and which severity they borrow from alias records; a delta does
not re-match those packages, and the daily full pass corrects them.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from regward.sbom.model import Distro, Package
from regward.vulns.ecosystems import index_ecosystem, normalize_name, queries_for
from regward.vulns.feed import Feed
from regward.vulns.matcher import Finding, MatchOptions, match_report

logger = logging.getLogger(__name__)

PackageKey = tuple[str, str]
"""(index ecosystem, normalised name), the key of the feed index and of the portfolio index."""

FindingKey = tuple[str, str, str, str, tuple[str, ...]]
"""(finding id, package name, package version, severity, fixed versions): what a decision can
depend on. Two results with equal finding keys lead to the same decision."""


class FindingLike(Protocol):
    """A finding as re-evaluation reads it: a matcher `Finding` or a stored one."""

    @property
    def id(self) -> str:
        """The vulnerability id."""
        ...

    @property
    def package(self) -> Package:
        """The affected package."""
        ...

    @property
    def severity(self) -> object:
        """A `Severity`, or its string value."""
        ...

    @property
    def fixed(self) -> tuple[str, ...]:
        """Versions that fix it."""
        ...


_PackageIdentity = tuple[str, str, str, str, str | None, str | None, Distro | None]


@functools.lru_cache(maxsize=262_144)
def package_keys(package: Package) -> frozenset[PackageKey]:
    """Return the index keys under which the matcher looks a package up (cached per package)."""
    keys: set[PackageKey] = set()
    for query in queries_for(package):
        for ecosystem in query.ecosystems:
            keys.add((index_ecosystem(ecosystem), normalize_name(ecosystem, query.name)))
    return frozenset(keys)


def finding_keys(findings: Iterable[FindingLike]) -> frozenset[FindingKey]:
    """Return the finding keys of a result, for comparing two results."""
    return frozenset(
        (
            finding.id,
            finding.package.name,
            finding.package.version,
            str(finding.severity),
            finding.fixed,
        )
        for finding in findings
    )


@dataclass(frozen=True)
class DigestResult:
    """The match result of one digest against one feed revision."""

    digest: str
    findings: tuple[Finding, ...]
    feed_revision: str
    scanned_at: datetime
    changed: bool = True
    """False when the stored result has the same findings, so only its revision and scan time
    need rewriting."""


@dataclass(frozen=True)
class ResultChange:
    """A digest whose findings changed in a re-match."""

    digest: str
    before: tuple[FindingLike, ...]
    """The stored findings before the re-match."""
    after: tuple[Finding, ...]
    feed_revision: str

    @property
    def added(self) -> frozenset[str]:
        """Ids of findings the digest gained."""
        return frozenset(f.id for f in self.after) - frozenset(f.id for f in self.before)

    @property
    def removed(self) -> frozenset[str]:
        """Ids of findings the digest lost."""
        return frozenset(f.id for f in self.before) - frozenset(f.id for f in self.after)


class Portfolio(Protocol):
    """The digests of regward's portfolio, their SBOM packages and their stored results.

    Methods take and return batches so that a database-backed portfolio makes one query per
    batch. Digests are ordered as strings everywhere, so that a pass can resume after the last
    digest it finished.
    """

    def digests_for_keys(self, keys: Collection[PackageKey]) -> list[str]:
        """Return the digests whose SBOM has a package filed under one of `keys`, sorted."""
        ...

    def digests_after(self, after: str | None, limit: int) -> list[str]:
        """Return up to `limit` digests greater than `after` (all when None), sorted."""
        ...

    def packages(self, digests: Sequence[str]) -> Mapping[str, Sequence[Package]]:
        """Return the SBOM packages of each digest; digests without an SBOM are left out."""
        ...

    def stored_findings(self, digests: Sequence[str]) -> Mapping[str, tuple[FindingLike, ...]]:
        """Return the stored findings of each digest that has a result."""
        ...

    def store_results(self, results: Sequence[DigestResult]) -> None:
        """Replace the stored results of these digests."""
        ...

    def advance_revision(self, previous: str, revision: str, at: datetime) -> int:
        """Mark every result matched against `previous` as valid for `revision` as of `at`.

        Called once every digest a change from `previous` to `revision` can affect was
        re-matched: the others' findings are the same under both revisions. Returns the count.
        """
        ...


def _identity(package: Package) -> _PackageIdentity:
    return (
        package.type,
        package.name,
        package.version,
        package.purl,
        package.source_name,
        package.source_version,
        package.distro,
    )


class Rematcher:
    """Matches packages against the current feed, remembering results per distinct package.

    Safe to call from one thread at a time per method; `set_feed` and `match` take a lock.
    """

    def __init__(self, options: MatchOptions | None = None, *, max_memo: int = 2_000_000) -> None:
        """Create a matcher with no feed; `max_memo` bounds the distinct packages remembered."""
        self.options = options or MatchOptions()
        self.max_memo = max_memo
        self.feed: Feed | None = None
        self._memo: dict[_PackageIdentity, tuple[Finding, ...]] = {}
        self._by_key: dict[PackageKey, set[_PackageIdentity]] = {}
        self._lock = threading.Lock()
        self.memo_hits = 0
        self.memo_misses = 0

    @property
    def revision(self) -> str | None:
        """The revision of the current feed, None before `set_feed`."""
        return self.feed.revision if self.feed is not None else None

    def set_feed(self, feed: Feed, changed_keys: Collection[PackageKey] | None) -> int:
        """Switch to `feed`, forgetting the packages under `changed_keys` (all when None).

        Returns:
            How many remembered packages were forgotten.
        """
        with self._lock:
            self.feed = feed
            if changed_keys is None:
                dropped = len(self._memo)
                self._memo.clear()
                self._by_key.clear()
                return dropped
            dropped = 0
            for key in changed_keys:
                for identity in self._by_key.pop(key, ()):
                    if self._memo.pop(identity, None) is not None:
                        dropped += 1
            return dropped

    def match(self, packages: Iterable[Package]) -> tuple[Finding, ...]:
        """Return the findings of an image's packages against the current feed.

        Raises:
            RuntimeError: `set_feed` was never called.
        """
        feed = self.feed
        if feed is None:
            raise RuntimeError("Rematcher.match called before set_feed")
        findings: list[Finding] = []
        for package in packages:
            identity = _identity(package)
            found = self._memo.get(identity)
            if found is None:
                self.memo_misses += 1
                found = tuple(match_report(feed, [package], self.options).findings)
                self._remember(identity, package, found)
            else:
                self.memo_hits += 1
            findings.extend(
                finding if finding.package is package else replace(finding, package=package)
                for finding in found
            )
        findings.sort(
            key=lambda finding: (finding.id, finding.package.name, finding.package.version)
        )
        return tuple(findings)

    def _remember(
        self, identity: _PackageIdentity, package: Package, found: tuple[Finding, ...]
    ) -> None:
        with self._lock:
            if len(self._memo) >= self.max_memo:
                # Forget everything rather than track usage: a full memo means a full pass is
                # running over more distinct packages than the bound, and it refills as it goes.
                self._memo.clear()
                self._by_key.clear()
            self._memo[identity] = found
            for key in package_keys(package):
                self._by_key.setdefault(key, set()).add(identity)

    def rematch(
        self, portfolio: Portfolio, digests: Sequence[str], now: datetime
    ) -> list[ResultChange]:
        """Re-match `digests`, store every result, and return the digests whose findings changed.

        Raises:
            RuntimeError: `set_feed` was never called.
        """
        feed = self.feed
        if feed is None:
            raise RuntimeError("Rematcher.rematch called before set_feed")
        packages = portfolio.packages(digests)
        stored = portfolio.stored_findings(digests)
        results: list[DigestResult] = []
        changes: list[ResultChange] = []
        for digest in digests:
            image_packages = packages.get(digest)
            if image_packages is None:
                continue
            findings = self.match(image_packages)
            previous = stored.get(digest)
            before = previous if previous is not None else ()
            changed = previous is None or finding_keys(before) != finding_keys(findings)
            results.append(DigestResult(digest, findings, feed.revision, now, changed))
            if changed and finding_keys(before) != finding_keys(findings):
                changes.append(ResultChange(digest, before, findings, feed.revision))
        portfolio.store_results(results)
        return changes
