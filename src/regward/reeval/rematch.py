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
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
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
    replaces: tuple[FindingLike, ...] | None = None
    """The findings the stored result has, when known, so that a store can write only the
    difference; None when they are not known."""


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

    def stored_revisions(self, digests: Sequence[str]) -> Mapping[str, str]:
        """Return the feed revision of each digest's stored result."""
        ...

    def store_results(self, results: Sequence[DigestResult]) -> None:
        """Replace the stored results of these digests."""
        ...

    def advance_revision(
        self, previous: str, revision: str, at: datetime, *, matched_before: datetime
    ) -> int:
        """Mark results matched against `previous` as valid for `revision` as of `at`.

        Called once every digest a change from `previous` to `revision` can affect was
        re-matched: the others' findings are the same under both revisions. Only results
        scanned at or before `matched_before` (when the change was seen) are marked, because a
        result written at `previous` later (by a gate that had not loaded `revision` yet) may be
        one the change affects. Returns the count.
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

    It also keeps the feed before the last `set_feed`, so that a delta compares each digest's
    findings under the previous and the new revision itself. The stored findings may already
    have been rewritten for the new revision by the gate, which would hide the change.

    `set_feed` and the memo updates take a lock; one scheduler thread calls the rest.
    """

    def __init__(self, options: MatchOptions | None = None, *, max_memo: int = 2_000_000) -> None:
        """Create a matcher with no feed; `max_memo` bounds the distinct packages remembered."""
        self.options = options or MatchOptions()
        self.max_memo = max_memo
        self.feed: Feed | None = None
        self.previous_feed: Feed | None = None
        """The feed before the last `set_feed` that named changed keys, for before-findings."""
        self._memo: dict[_PackageIdentity, tuple[Finding, ...]] = {}
        self._by_key: dict[PackageKey, set[_PackageIdentity]] = {}
        self._previous_memo: dict[_PackageIdentity, tuple[Finding, ...]] = {}
        self._changed_keys: frozenset[PackageKey] = frozenset()
        self._changed_identities: set[_PackageIdentity] = set()
        """Packages filed under a changed key, whose findings may differ between the feeds."""
        self._lock = threading.Lock()
        self.memo_hits = 0
        self.memo_misses = 0

    @property
    def revision(self) -> str | None:
        """The revision of the current feed, None before `set_feed`."""
        return self.feed.revision if self.feed is not None else None

    @property
    def previous_revision(self) -> str | None:
        """The revision of `previous_feed`, None when there is none."""
        return self.previous_feed.revision if self.previous_feed is not None else None

    def set_feed(self, feed: Feed, changed_keys: Collection[PackageKey] | None) -> int:
        """Switch to `feed`, forgetting the packages under `changed_keys` (all when None).

        With `changed_keys`, the current feed becomes `previous_feed` and the forgotten
        findings are kept as its findings.

        Returns:
            How many remembered packages were forgotten.
        """
        with self._lock:
            if changed_keys is None:
                dropped = len(self._memo)
                self.feed = feed
                self.previous_feed = None
                self._memo.clear()
                self._by_key.clear()
                self._previous_memo = {}
                self._changed_keys = frozenset()
                self._changed_identities = set()
                return dropped
            self.previous_feed = self.feed
            self.feed = feed
            self._changed_keys = frozenset(changed_keys)
            self._previous_memo = {}
            self._changed_identities = set()
            for key in changed_keys:
                for identity in self._by_key.pop(key, ()):
                    self._changed_identities.add(identity)
                    found = self._memo.pop(identity, None)
                    if found is not None:
                        self._previous_memo[identity] = found
            return len(self._previous_memo)

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
            findings.extend(_placed(found, package))
        return _sorted(findings)

    def match_pair(
        self, packages: Iterable[Package]
    ) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
        """Return an image's findings against the current feed and against `previous_feed`.

        Only packages filed under a changed key are matched against the previous feed; every
        other package has the same findings under both.

        Raises:
            RuntimeError: `set_feed` was never called, or there is no previous feed.
        """
        feed, previous = self.feed, self.previous_feed
        if feed is None or previous is None:
            raise RuntimeError("Rematcher.match_pair needs a current and a previous feed")
        after: list[Finding] = []
        before: list[Finding] = []
        for package in packages:
            identity = _identity(package)
            found = self._memo.get(identity)
            if found is None:
                self.memo_misses += 1
                found = tuple(match_report(feed, [package], self.options).findings)
                self._remember(identity, package, found)
            else:
                self.memo_hits += 1
            placed = list(_placed(found, package))
            after.extend(placed)
            if identity not in self._changed_identities:
                before.extend(placed)
                continue
            earlier = self._previous_memo.get(identity)
            if earlier is None:
                earlier = tuple(match_report(previous, [package], self.options).findings)
                with self._lock:
                    self._previous_memo[identity] = earlier
            before.extend(_placed(earlier, package))
        return _sorted(after), _sorted(before)

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
            keys = package_keys(package)
            for key in keys:
                self._by_key.setdefault(key, set()).add(identity)
            if keys & self._changed_keys:
                self._changed_identities.add(identity)

    def rematch(
        self,
        portfolio: Portfolio,
        digests: Sequence[str],
        now: datetime,
        *,
        previous_revision: str | None = None,
    ) -> list[ResultChange]:
        """Re-match `digests`, store every result, and return the digests whose findings changed.

        Args:
            portfolio: where the packages and results are.
            digests: the digests to re-match.
            now: the scan time to store.
            previous_revision: for a delta, the revision it starts from. When it is this
                matcher's `previous_revision`, a change is judged by matching against
                `previous_feed` (see `_rematch_delta`). That stays right when a gate has
                rewritten the stored result first. Otherwise the stored findings are used.

        Raises:
            RuntimeError: `set_feed` was never called.
        """
        feed = self.feed
        if feed is None:
            raise RuntimeError("Rematcher.rematch called before set_feed")
        compare_previous = previous_revision is not None and (
            previous_revision == self.previous_revision
        )
        packages = portfolio.packages(digests)
        if compare_previous:
            return self._rematch_delta(portfolio, digests, packages, now)
        stored = portfolio.stored_findings(digests)
        results: list[DigestResult] = []
        changes: list[ResultChange] = []
        for digest in digests:
            image_packages = packages.get(digest)
            if image_packages is None:
                continue
            findings = self.match(image_packages)
            after_keys = finding_keys(findings)
            previous = stored.get(digest)
            before_keys = finding_keys(previous) if previous is not None else frozenset()
            changed = previous is None or before_keys != after_keys
            results.append(DigestResult(digest, findings, feed.revision, now, changed))
            if before_keys != after_keys:
                before = previous if previous is not None else ()
                changes.append(ResultChange(digest, before, findings, feed.revision))
        portfolio.store_results(results)
        return changes

    def _rematch_delta(
        self,
        portfolio: Portfolio,
        digests: Sequence[str],
        packages: Mapping[str, Sequence[Package]],
        now: datetime,
    ) -> list[ResultChange]:
        """Re-match a delta's digests, judging each change against the previous feed.

        The stored findings are not read. A result stored at the previous revision equals the
        findings under the previous feed, so it is rewritten only when those differ from the
        new ones. A result already stored at the new revision (a gate matched it first) is only
        given the new scan time, and a result at any other revision is rewritten.
        """
        feed = self.feed
        assert feed is not None
        previous_revision = self.previous_revision
        revisions = portfolio.stored_revisions(digests)
        results: list[DigestResult] = []
        changes: list[ResultChange] = []
        for digest in digests:
            image_packages = packages.get(digest)
            if image_packages is None:
                continue
            after, before = self.match_pair(image_packages)
            differs = finding_keys(before) != finding_keys(after)
            stored_revision = revisions.get(digest)
            replaces: tuple[FindingLike, ...] | None = None
            if stored_revision == previous_revision:
                rewrite = differs
                replaces = before
            else:
                rewrite = stored_revision != feed.revision
            results.append(DigestResult(digest, after, feed.revision, now, rewrite, replaces))
            if differs:
                changes.append(ResultChange(digest, before, after, feed.revision))
        portfolio.store_results(results)
        return changes


def _placed(found: tuple[Finding, ...], package: Package) -> Iterator[Finding]:
    """Yield remembered findings with `package` (the image's own, with its paths) in them."""
    for finding in found:
        yield finding if finding.package is package else replace(finding, package=package)


def _sorted(findings: list[Finding]) -> tuple[Finding, ...]:
    findings.sort(key=lambda finding: (finding.id, finding.package.name, finding.package.version))
    return tuple(findings)
