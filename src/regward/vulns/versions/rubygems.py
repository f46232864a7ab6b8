"""RubyGems version ordering, as `Gem::Version#<=>` defines it.

Written by hand from the RubyGems `Gem::Version` documentation: `-` means `.pre.`, the version is
split into numbers and letter runs, and a letter run marks a pre-release (`1.0.a < 1.0`). Trailing
zeros are dropped from the numeric part and from the part after the first letter run, then segments
compare pairwise with missing ones taken as 0; a number is newer than a letter run.
"""

from __future__ import annotations

import re
from typing import Any

from regward.vulns.errors import InvalidVersionError
from regward.vulns.versions.interface import CmpKey, Ordering, VersionKey

_GEM = re.compile(r"[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
_SEGMENT = re.compile(r"[0-9]+|[a-z]+", re.IGNORECASE)


def _strip_trailing_zeros(segments: list[int | str]) -> list[int | str]:
    while segments and segments[-1] == 0:
        segments.pop()
    return segments


def canonical_segments(version: str) -> tuple[int | str, ...]:
    """Return the segments that `Gem::Version#<=>` compares."""
    segments: list[int | str] = [
        int(piece) if piece.isdigit() else piece
        for piece in _SEGMENT.findall(version.replace("-", ".pre."))
    ]
    first_string = next((i for i, s in enumerate(segments) if isinstance(s, str)), len(segments))
    numeric = _strip_trailing_zeros(segments[:first_string])
    rest = _strip_trailing_zeros(segments[first_string:])
    return tuple(numeric + rest)


class GemKey(CmpKey):
    """A parsed RubyGems version."""

    __slots__ = ("segments",)

    def __init__(self, segments: tuple[int | str, ...]) -> None:
        self.segments = segments

    def cmp(self, other: Any) -> int:
        """Compare with another RubyGems version, padding the shorter one with zeros."""
        assert isinstance(other, GemKey)
        for index in range(max(len(self.segments), len(other.segments))):
            left = self.segments[index] if index < len(self.segments) else 0
            right = other.segments[index] if index < len(other.segments) else 0
            if left == right:
                continue
            if isinstance(left, str) and isinstance(right, int):
                return -1
            if isinstance(left, int) and isinstance(right, str):
                return 1
            return -1 if left < right else 1  # type: ignore[operator]
        return 0


class RubyGemsOrdering(Ordering):
    """RubyGems ordering."""

    family = "rubygems"

    def _key(self, version: str) -> VersionKey:
        if _GEM.fullmatch(version) is None:
            raise InvalidVersionError(self.family, version, "not a Gem::Version")
        return GemKey(canonical_segments(version))
