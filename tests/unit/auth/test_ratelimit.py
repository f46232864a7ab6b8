"""Failed-login token bucket per client address."""

from __future__ import annotations

from regward.auth.ratelimit import LoginRateLimiter
from tests.unit.auth.conftest import Clock


def test_burst_then_throttled(clock: Clock) -> None:
    limiter = LoginRateLimiter(burst=3, per_minute=6, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") == 0
        limiter.record_failure("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") > 0
    assert limiter.retry_after("10.0.0.2") == 0


def test_refills_over_time(clock: Clock) -> None:
    limiter = LoginRateLimiter(burst=2, per_minute=6, clock=clock)
    limiter.record_failure("a")
    limiter.record_failure("a")
    wait = limiter.retry_after("a")
    assert 9 <= wait <= 10
    clock.advance(wait)
    assert limiter.retry_after("a") == 0


def test_full_bucket_forgotten(clock: Clock) -> None:
    limiter = LoginRateLimiter(burst=2, per_minute=60, clock=clock)
    limiter.record_failure("a")
    clock.advance(120)
    assert limiter.retry_after("a") == 0
    assert limiter._buckets == {}
