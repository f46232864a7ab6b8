"""Bounded in-memory caches of the gate: verified manifests, decisions and allowed blobs.

Everything here is keyed by digest, never by tag: a tag is resolved upstream on every pull, and
only content-addressed facts are reused.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from regward.oci.manifest import Manifest
from regward.policy.evaluate import Decision


@dataclass(frozen=True)
class CachedManifest:
    """Manifest bytes whose digest the gate verified, ready to serve again."""

    media_type: str
    raw: bytes
    manifest: Manifest


class ManifestCache:
    """LRU of verified manifest bytes per (repository, digest), bounded by total bytes."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[tuple[str, str], CachedManifest] = OrderedDict()

    def get(self, repository: str, digest: str) -> CachedManifest | None:
        key = (repository, digest)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, repository: str, digest: str, entry: CachedManifest) -> None:
        if len(entry.raw) > self._max_bytes:
            return
        key = (repository, digest)
        previous = self._entries.pop(key, None)
        if previous is not None:
            self._bytes -= len(previous.raw)
        self._entries[key] = entry
        self._bytes += len(entry.raw)
        while self._bytes > self._max_bytes and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted.raw)

    def __len__(self) -> int:
        return len(self._entries)


DecisionKey = tuple[str, str, str]
"""(digest, policy revision, rule name or empty string)."""


class DecisionCache:
    """Decisions per (digest, policy revision, rule), with a time to live and per-digest invalidation."""

    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_entries: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[DecisionKey, tuple[float, Decision]] = OrderedDict()
        self._by_digest: dict[str, set[DecisionKey]] = {}

    def get(self, key: DecisionKey) -> Decision | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires_at, decision = item
        if self._clock() >= expires_at:
            self._remove(key)
            return None
        return decision

    def put(self, key: DecisionKey, decision: Decision) -> None:
        if self._ttl <= 0:
            return
        self._entries[key] = (self._clock() + self._ttl, decision)
        self._entries.move_to_end(key)
        self._by_digest.setdefault(key[0], set()).add(key)
        while len(self._entries) > self._max_entries:
            oldest = next(iter(self._entries))
            self._remove(oldest)

    def invalidate_digest(self, digest: str) -> int:
        """Drop every decision about `digest`; return how many were dropped."""
        keys = self._by_digest.pop(digest, set())
        for key in keys:
            self._entries.pop(key, None)
        return len(keys)

    def clear(self) -> None:
        self._entries.clear()
        self._by_digest.clear()

    def _remove(self, key: DecisionKey) -> None:
        self._entries.pop(key, None)
        keys = self._by_digest.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_digest[key[0]]

    def __len__(self) -> int:
        return len(self._entries)


class BoundedSet:
    """A set of keys that evicts the least recently added ones beyond `max_entries`."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], None] = OrderedDict()

    def add(self, key: tuple[str, str]) -> None:
        self._entries[key] = None
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._entries


class BoundedMap:
    """A mapping that evicts the least recently set keys beyond `max_entries`."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], str] = OrderedDict()

    def set(self, key: tuple[str, str], value: str) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def get(self, key: tuple[str, str]) -> str | None:
        return self._entries.get(key)
