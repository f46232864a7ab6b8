"""Durations in flags and config files."""

from __future__ import annotations

import pytest

from regward.reeval import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2s", 2.0),
        ("500ms", 0.5),
        ("15m", 900.0),
        ("24h", 86400.0),
        ("7d", 604800.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        (30, 30.0),
        ("45", 45.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration_accepts(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "2 weeks", "-5s", "2s3", True, None, "1h-1m", "-2"])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(DurationError, match="invalid feed interval"):
        parse_duration(text, name="feed interval")


def test_parse_duration_zero_needs_permission() -> None:
    with pytest.raises(DurationError, match="must be more than zero"):
        parse_duration("0s")
    assert parse_duration("0s", allow_zero=True) == 0.0


@pytest.mark.parametrize(
    ("seconds", "text"), [(900.0, "15m"), (86400.0, "1d"), (2.0, "2s"), (2.5, "2500ms")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
