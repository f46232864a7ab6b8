"""dpkg version ordering (Debian, Ubuntu): `[epoch:]upstream[-revision]`, with `~` sorting before everything.

Parsing and comparison come from python-debian's `debian.debian_support.Version`, which follows
dpkg's `verrevcmp` and passes every Debian comparison vector we test against.
"""

from __future__ import annotations

from debian.debian_support import Version

from regward.vulns.errors import InvalidVersionError
from regward.vulns.versions.interface import Ordering, VersionKey


class DpkgOrdering(Ordering):
    """dpkg ordering: epoch, then upstream version, then Debian revision."""

    family = "dpkg"

    def _key(self, version: str) -> VersionKey:
        try:
            parsed: VersionKey = Version(version)
        except ValueError as exc:
            raise InvalidVersionError(self.family, version, "not a dpkg version") from exc
        return parsed

    def is_canonical(self, version: str) -> bool:
        """Return whether dpkg accepts the version without a warning: it must start with a digit."""
        upstream = version.split(":", 1)[1] if ":" in version else version
        return super().is_canonical(version) and upstream[:1].isdigit()
