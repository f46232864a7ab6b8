"""Hackage (Haskell) version ordering: a dot-separated list of numbers compared as a list.

As Haskell's `Data.Version` orders them, a longer list sorts after its own prefix, so `1.0 < 1.0.0`.
"""

from __future__ import annotations

import re

from regward.vulns.errors import InvalidVersionError
from regward.vulns.versions.interface import Ordering, VersionKey

_HACKAGE = re.compile(r"\d+(?:\.\d+)*")


class HackageOrdering(Ordering):
    """Hackage ordering: lexicographic over the numeric components."""

    family = "hackage"

    def _key(self, version: str) -> VersionKey:
        if _HACKAGE.fullmatch(version) is None:
            raise InvalidVersionError(self.family, version, "expected numbers separated by dots")
        return tuple(int(part) for part in version.split("."))
