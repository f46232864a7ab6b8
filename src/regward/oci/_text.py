"""Helpers that put untrusted values into error messages and logs safely."""

from __future__ import annotations

MAX_SHOWN = 100


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """Return `repr(value)` cut to about `limit` characters, so control characters stay escaped."""
    text = repr(value)
    if len(text) > limit:
        return text[: limit - 3] + "..."
    return text
