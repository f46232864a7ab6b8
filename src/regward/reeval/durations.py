"""Durations written as in configuration files and flags: `500ms`, `2s`, `15m`, `24h`, `7d`."""

from __future__ import annotations

import math
import re

from regward.errors import RegwardError

_DURATION_RE = re.compile(r"(?P<value>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>ms|s|m|h|d)")
_SECONDS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class DurationError(RegwardError):
    """A duration is malformed or out of range."""


def parse_duration(value: object, *, name: str = "duration", allow_zero: bool = False) -> float:
    """Return a duration in seconds.

    Accepts a number of seconds (int, float, or a string of digits such as `0`) or a string of
    one or more `<number><unit>` parts with units `ms`, `s`, `m`, `h` and `d`, such as `1h30m`.

    Args:
        value: the duration.
        name: what the duration sets, for the error message.
        allow_zero: accept 0; otherwise the duration must be positive.

    Raises:
        DurationError: the value is not a duration, or is negative (or zero when not allowed).
    """
    seconds: float
    if isinstance(value, bool):
        raise DurationError(f"invalid {name} {value!r}: expected a duration such as 30s or 15m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _SECONDS_RE.fullmatch(value.strip()):
        seconds = float(value.strip())
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        position = 0
        seconds = 0.0
        for match in _DURATION_RE.finditer(text):
            if match.start() != position:
                break
            seconds += float(match.group("value")) * _SECONDS[match.group("unit")]
            position = match.end()
        if not text or position != len(text):
            raise DurationError(
                f"invalid {name} {value!r}: expected a duration such as 500ms, 30s, 15m, 24h or 7d"
            )
    else:
        raise DurationError(f"invalid {name} {value!r}: expected a duration such as 30s or 15m")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        expected = "zero or more" if allow_zero else "more than zero"
        raise DurationError(f"invalid {name} {value!r}: must be {expected}")
    return seconds


def format_duration(seconds: float) -> str:
    """Write seconds in the largest unit that divides them: 900 → `15m`, 2.5 → `2500ms`."""
    for unit in ("d", "h", "m", "s"):
        size = _SECONDS[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms"
