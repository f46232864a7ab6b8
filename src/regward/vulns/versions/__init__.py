"""Version ordering per ecosystem: one module per ordering family, chosen by OSV ecosystem name.

Example:
    >>> from regward.vulns import versions
    >>> versions.compare("Debian:12", "1:2.39.5-0+deb12u1", "2.40-1")
    1
    >>> versions.compare("Alpine:v3.20", "1.6-r0", "1.6_rc1-r0")
    1
"""

from __future__ import annotations

from collections.abc import Callable

from regward.vulns.errors import InvalidVersionError, UnsupportedEcosystemError
from regward.vulns.versions.apk import ApkOrdering
from regward.vulns.versions.dpkg import DpkgOrdering
from regward.vulns.versions.hackage import HackageOrdering
from regward.vulns.versions.interface import Ordering, VersionKey
from regward.vulns.versions.maven import MavenOrdering
from regward.vulns.versions.nuget import NugetOrdering
from regward.vulns.versions.packagist import PackagistOrdering
from regward.vulns.versions.pep440 import Pep440Ordering
from regward.vulns.versions.pub import PubOrdering
from regward.vulns.versions.rpm import RpmOrdering
from regward.vulns.versions.rubygems import RubyGemsOrdering
from regward.vulns.versions.semver import SemverOrdering, is_go_pseudo_version

__all__ = [
    "ApkOrdering",
    "DpkgOrdering",
    "HackageOrdering",
    "InvalidVersionError",
    "MavenOrdering",
    "NugetOrdering",
    "Ordering",
    "PackagistOrdering",
    "Pep440Ordering",
    "PubOrdering",
    "RpmOrdering",
    "RubyGemsOrdering",
    "SEMVER",
    "SemverOrdering",
    "UnsupportedEcosystemError",
    "VersionKey",
    "compare",
    "is_go_pseudo_version",
    "ordering_for",
    "parse",
    "sort_key",
]

DPKG = DpkgOrdering()
APK = ApkOrdering()
RPM = RpmOrdering()
PEP440 = Pep440Ordering()
SEMVER = SemverOrdering()
"""The ordering of OSV `SEMVER` ranges, whatever the ecosystem."""
MAVEN = MavenOrdering()
NUGET = NugetOrdering()
RUBYGEMS = RubyGemsOrdering()
PACKAGIST = PackagistOrdering()
PUB = PubOrdering()
HACKAGE = HackageOrdering()

# OSV ecosystem names without their release suffix, lower-cased, as osv-scalibr groups them.
_BY_ECOSYSTEM: dict[str, Ordering] = {
    "debian": DPKG,
    "ubuntu": DPKG,
    "alpine": APK,
    "wolfi": APK,
    "chainguard": APK,
    "minimos": APK,
    "alpaquita": APK,
    "bellsoft hardened containers": APK,
    "red hat": RPM,
    "rocky linux": RPM,
    "almalinux": RPM,
    "suse": RPM,
    "opensuse": RPM,
    "mageia": RPM,
    "openeuler": RPM,
    "pypi": PEP440,
    "npm": SEMVER,
    "go": SEMVER,
    "crates.io": SEMVER,
    "hex": SEMVER,
    "bitnami": SEMVER,
    "swifturl": SEMVER,
    "maven": MAVEN,
    "nuget": NUGET,
    "rubygems": RUBYGEMS,
    "packagist": PACKAGIST,
    "pub": PUB,
    "hackage": HACKAGE,
}


def ordering_for(ecosystem: str) -> Ordering:
    """Return the ordering of an OSV ecosystem such as `Debian:12`, `AlmaLinux:9` or `PyPI`.

    Raises:
        UnsupportedEcosystemError: the ecosystem has no known ordering.
    """
    base = ecosystem.split(":", 1)[0].strip().lower()
    ordering = _BY_ECOSYSTEM.get(base)
    if ordering is None:
        raise UnsupportedEcosystemError(ecosystem)
    return ordering


def parse(ecosystem: str, version: str) -> VersionKey:
    """Parse a version of an ecosystem into a sort key.

    Raises:
        UnsupportedEcosystemError: the ecosystem has no known ordering.
        InvalidVersionError: the version cannot be ordered.
    """
    return ordering_for(ecosystem).key(version)


def compare(ecosystem: str, a: str, b: str) -> int:
    """Return -1, 0 or 1 as version `a` sorts before, equal to or after `b` in the ecosystem.

    Raises:
        UnsupportedEcosystemError: the ecosystem has no known ordering.
        InvalidVersionError: either version cannot be ordered.
    """
    return ordering_for(ecosystem).compare(a, b)


def sort_key(ecosystem: str) -> Callable[[str], VersionKey]:
    """Return a `key=` function that sorts version strings of the ecosystem.

    Raises:
        UnsupportedEcosystemError: the ecosystem has no known ordering.
    """
    return ordering_for(ecosystem).key
