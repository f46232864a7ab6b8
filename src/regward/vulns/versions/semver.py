"""SemVer 2.0 ordering (npm, Go, crates.io, Hex, and OSV `SEMVER` ranges).

Written by hand because the rules are short and the tolerated inputs are wider than SemVer's
grammar: a leading `v` (Go), fewer than three numeric components (`1.2` is `1.2.0`), and more
than three, where everything after the third is build metadata as in osv-scalibr's SemVer
comparator. Build metadata never affects the order. Pre-release identifiers compare numerically
when both are numbers, a number sorts before a word, words compare in ASCII order, and a shorter
list of identifiers sorts first when it is a prefix of the longer one.

A Go pseudo-version (`v0.0.0-20210817142637-7d9622a276b7`, `v1.6.1-0.20230101000000-abc`) is a
pre-release of the version it names, so it sorts before that release.
"""

from __future__ import annotations

import re

from regward.vulns.errors import InvalidVersionError
from regward.vulns.versions.interface import Ordering, VersionKey

_LENIENT = re.compile(
    r"v?(?P<core>\d+(?:\.\d+)*)(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.+-]*))?"
)
_CANONICAL = re.compile(
    r"(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*)?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_GO_PSEUDO = re.compile(
    r"v?\d+\.\d+\.\d+-(?:(?:0\.)?\d{14}-[0-9a-f]{12}|[0-9A-Za-z.-]*\.0\.\d{14}-[0-9a-f]{12})(?:\+.*)?"
)


def identifiers_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Return the key of dot-separated identifiers: numbers as `(0, n)`, words as `(1, word)`."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in text.split("."))


class SemverOrdering(Ordering):
    """SemVer 2.0 precedence with the leniency described in the module docstring."""

    family = "semver"

    def _key(self, version: str) -> VersionKey:
        match = _LENIENT.fullmatch(version)
        if match is None:
            raise InvalidVersionError(
                self.family, version, "expected MAJOR[.MINOR[.PATCH]][-PRE][+BUILD]"
            )
        numbers = [int(part) for part in match["core"].split(".")[:3]]
        numbers += [0] * (3 - len(numbers))
        pre = match["pre"]
        if pre is None:
            # A release sorts after all of its pre-releases.
            return (tuple(numbers), (1,))
        if "" in pre.split("."):
            raise InvalidVersionError(self.family, version, "empty pre-release identifier")
        return (tuple(numbers), (0, identifiers_key(pre)))

    def is_canonical(self, version: str) -> bool:
        """Return whether the version matches SemVer 2.0 exactly, without a leading `v`."""
        return _CANONICAL.fullmatch(version) is not None


def is_go_pseudo_version(version: str) -> bool:
    """Return whether a Go module version is a pseudo-version (a commit, not a tag)."""
    return _GO_PSEUDO.fullmatch(version) is not None
