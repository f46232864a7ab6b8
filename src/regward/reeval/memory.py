"""A `Portfolio` held in memory, for tests and benchmarks; nothing survives the process."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from regward.reeval.rematch import DigestResult, FindingLike, PackageKey, package_keys
from regward.sbom.model import Package


class MemoryPortfolio:
    """Digests with their packages, an inverted index and the latest result per digest."""

    def __init__(self) -> None:
        """Create an empty portfolio."""
        self._packages: dict[str, tuple[Package, ...]] = {}
        self._index: dict[PackageKey, set[str]] = {}
        self._sorted: list[str] = []
        self.results: dict[str, DigestResult] = {}
        """The latest result per digest."""
        self._lock = threading.Lock()

    def add(self, digest: str, packages: Sequence[Package]) -> None:
        """Add or replace a digest's SBOM packages and index them."""
        with self._lock:
            if digest in self._packages:
                self._unindex(digest)
            else:
                bisect.insort(self._sorted, digest)
            self._packages[digest] = tuple(packages)
            for package in packages:
                for key in package_keys(package):
                    self._index.setdefault(key, set()).add(digest)

    def _unindex(self, digest: str) -> None:
        for package in self._packages[digest]:
            for key in package_keys(package):
                self._index.get(key, set()).discard(digest)

    def __len__(self) -> int:
        return len(self._packages)

    def index_keys(self) -> set[PackageKey]:
        """Return every package key at least one digest is indexed under."""
        return {key for key, digests in self._index.items() if digests}

    def digests_for_keys(self, keys: Collection[PackageKey]) -> list[str]:
        """Return the digests with a package under one of `keys`, sorted."""
        found: set[str] = set()
        for key in keys:
            found |= self._index.get(key, set())
        return sorted(found)

    def digests_after(self, after: str | None, limit: int) -> list[str]:
        """Return up to `limit` digests after `after`, sorted."""
        start = 0 if after is None else bisect.bisect_right(self._sorted, after)
        return self._sorted[start : start + limit]

    def packages(self, digests: Sequence[str]) -> Mapping[str, Sequence[Package]]:
        """Return the packages of each known digest."""
        return {digest: self._packages[digest] for digest in digests if digest in self._packages}

    def stored_findings(self, digests: Sequence[str]) -> Mapping[str, tuple[FindingLike, ...]]:
        """Return the findings of each digest that has a result."""
        return {
            digest: self.results[digest].findings for digest in digests if digest in self.results
        }

    def stored_revisions(self, digests: Sequence[str]) -> Mapping[str, str]:
        """Return the feed revision of each digest that has a result."""
        return {
            digest: self.results[digest].feed_revision
            for digest in digests
            if digest in self.results
        }

    def store_results(self, results: Sequence[DigestResult]) -> None:
        """Keep these results as the latest."""
        with self._lock:
            for result in results:
                self.results[result.digest] = result

    def advance_revision(
        self, previous: str, revision: str, at: datetime, *, matched_before: datetime
    ) -> int:
        """Relabel results of `previous` scanned by `matched_before` as results of `revision`."""
        count = 0
        with self._lock:
            for digest, result in self.results.items():
                if result.feed_revision == previous and result.scanned_at <= matched_before:
                    self.results[digest] = DigestResult(digest, result.findings, revision, at)
                    count += 1
        return count
