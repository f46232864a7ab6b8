"""NuGet version ordering, as NuGet.Versioning's default `VersionComparer` defines it.

Written by hand from the NuGet package versioning reference
(https://learn.microsoft.com/nuget/concepts/package-versioning). A version has one to four numeric
parts, and missing parts are 0, so `1.0` equals `1.0.0.0`. Then comes the release label: a release
sorts after its pre-releases, and labels compare as SemVer 2.0 identifiers but case-insensitively.
Build metadata after `+` is ignored.
"""

from __future__ import annotations

import re

from regward.vulns.errors import InvalidVersionError
from regward.vulns.versions.interface import Ordering, VersionKey

_NUGET = re.compile(
    r"(?P<core>\d+(?:\.\d+){0,3})(?:-(?P<label>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z.-]*)?"
)


class NugetOrdering(Ordering):
    """NuGet ordering with four numeric parts and case-insensitive release labels."""

    family = "nuget"

    def _key(self, version: str) -> VersionKey:
        match = _NUGET.fullmatch(version)
        if match is None:
            raise InvalidVersionError(
                self.family, version, "expected 1 to 4 numbers, then [-LABEL][+METADATA]"
            )
        numbers = [int(part) for part in match["core"].split(".")]
        numbers += [0] * (4 - len(numbers))
        label = match["label"]
        if label is None:
            return (tuple(numbers), (1,))
        parts = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part.upper())
            for part in label.split(".")
        )
        return (tuple(numbers), (0, parts))
