"""Pub (Dart) version ordering: SemVer precedence, except that build metadata takes part.

As for SemVer, a leading `v` and fewer than three numbers (`1` is `1.0.0`) are accepted.

Dart's pub_semver sorts a version with build metadata after the same version without it, and
compares build identifiers like pre-release identifiers (`1.2.3+1 < 1.2.3+2 < 1.2.3+a`).
"""

from __future__ import annotations

import re

from regward.vulns.errors import InvalidVersionError
from regward.vulns.versions.interface import Ordering, VersionKey
from regward.vulns.versions.semver import identifiers_key

_PUB = re.compile(
    r"v?(?P<core>\d+(?:\.\d+){0,2})"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?"
)


class PubOrdering(Ordering):
    """Pub ordering: major, minor, patch, pre-release, then build metadata."""

    family = "pub"

    def _key(self, version: str) -> VersionKey:
        match = _PUB.fullmatch(version)
        if match is None:
            raise InvalidVersionError(
                self.family, version, "expected MAJOR[.MINOR[.PATCH]][-PRE][+BUILD]"
            )
        numbers = [int(part) for part in match["core"].split(".")]
        core = tuple(numbers + [0] * (3 - len(numbers)))
        pre = match["pre"]
        build = match["build"]
        for part in (pre, build):
            if part is not None and "" in part.split("."):
                raise InvalidVersionError(self.family, version, "empty identifier")
        pre_key = (1,) if pre is None else (0, identifiers_key(pre))
        build_key = (0,) if build is None else (1, identifiers_key(build))
        return (core, pre_key, build_key)

    def is_canonical(self, version: str) -> bool:
        """Return whether the version parses, has three numbers and no leading `v`."""
        match = _PUB.fullmatch(version)
        return match is not None and not version.startswith("v") and match["core"].count(".") == 2
