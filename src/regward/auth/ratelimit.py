"""Token-bucket limit on failed logins per client address.

Each address has a bucket of `burst` tokens refilled at `per_minute` tokens a minute. A failed login
takes one token. While the bucket is empty, every login attempt from that address, correct or not,
gets 429 without a credential check, so guessing costs the attacker time and the gate no CPU.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED_ADDRESSES = 100_000
"""Most addresses with a partly used bucket kept in memory; the least recently failed go first."""


@dataclass
class _Bucket:
    tokens: float
    updated: float


class LoginRateLimiter:
    """Per-address token buckets for failed logins. Thread-safe."""

    def __init__(self, *, burst: int, per_minute: float, clock: Callable[[], float]) -> None:
        """Create empty state.

        Args:
            burst: failed logins allowed in a row.
            per_minute: tokens added to each bucket per minute.
            clock: returns the current time in seconds.
        """
        self._burst = float(burst)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def _refilled(self, address: str, now: float) -> _Bucket | None:
        bucket = self._buckets.get(address)
        if bucket is None:
            return None
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
        bucket.updated = now
        if bucket.tokens >= self._burst:
            del self._buckets[address]
            return None
        return bucket

    def retry_after(self, address: str) -> float:
        """Return 0 when `address` may try to log in, else the seconds until it may."""
        with self._lock:
            bucket = self._refilled(address, self._clock())
            if bucket is None or bucket.tokens >= 1.0:
                return 0.0
            return (1.0 - bucket.tokens) / self._rate

    def record_failure(self, address: str) -> None:
        """Take one token from the bucket of `address`."""
        with self._lock:
            now = self._clock()
            bucket = self._refilled(address, now)
            if bucket is None:
                bucket = _Bucket(tokens=self._burst, updated=now)
                self._buckets[address] = bucket
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            self._buckets.move_to_end(address)
            while len(self._buckets) > MAX_TRACKED_ADDRESSES:
                self._buckets.popitem(last=False)
