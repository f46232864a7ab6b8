"""Replaying recorded osv.dev responses against the local matcher, restricted to locally present records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packageurl import PackageURL

from regward.sbom.model import Distro, Package
from regward.vulns import Feed, match

_LANGUAGE_TYPES = {
    "PyPI": "pypi",
    "Go": "golang",
    "npm": "npm",
    "Maven": "maven",
    "crates.io": "cargo",
    "RubyGems": "gem",
    "NuGet": "nuget",
    "Packagist": "composer",
    "Hackage": "hackage",
    "Pub": "pub",
    "SwiftURL": "swift",
}
_DISTRO_TYPES = {
    "Alpine": ("apk", "alpine"),
    "Debian": ("deb", "debian"),
    "Ubuntu": ("deb", "ubuntu"),
    "openSUSE": ("rpm", "opensuse-leap"),
}

# Local records that differ from what osv.dev served when the responses were recorded (newest
# `modified` among the recorded responses: 2026-08-04T16:38:21Z). Dates are golang/vulndb commit dates.
CHANGED_AFTER_RECORDING = {
    "GO-2026-5026": "stdlib added to affected on 2026-08-13 (commit 9de686e1)",
    "GO-2026-5942": "stdlib added to affected on 2026-08-13 (commit 9de686e1)",
    "GO-2026-5972": "published 2026-08-13 (commit 9de686e1)",
    "GO-2026-6088": "published 2026-08-13 (commit 9de686e1)",
    "GO-2026-6089": "published 2026-08-13 (commit 9de686e1)",
    "GO-2026-6090": "published 2026-08-13 (commit 9de686e1)",
    "GO-2026-6091": "published 2026-08-13 (commit 9de686e1)",
    "GO-2026-6179": "published 2026-08-13 (commit 9de686e1)",
    "GO-2026-6180": "published 2026-08-13 (commit 9de686e1)",
    "GO-2026-6218": "published 2026-08-13 (commit 9de686e1)",
    "GO-2026-6222": "published 2026-08-14",
}
# Recorded responses that leave out a local record whose data covers the query. The local PyPI
# snapshot (pypa/advisory-database, 2024-10-10) lists urllib3 1.24.3 in PYSEC-2021-108's `versions`
# and inside `introduced 0, fixed 1.26.5`. osv.dev returned neither that record nor
# GHSA-q2q7-5pp4-w6pg, which its references name, so the record osv.dev served differs from it.
NARROWER_UPSTREAM = {("PyPI", "urllib3", "1.24.3"): frozenset({"PYSEC-2021-108"})}


@dataclass(frozen=True)
class Difference:
    """One query whose local result differs from the recorded response."""

    ecosystem: str
    name: str
    version: str
    missing: frozenset[str]
    extra: frozenset[str]


@dataclass(frozen=True)
class Replay:
    """Agreement between the local matcher and recorded responses."""

    compared: int
    agreeing: int
    with_local_answers: int
    differences: tuple[Difference, ...]


def package_for(query: Mapping[str, Any]) -> Package | None:
    """Return the package a recorded query describes, or None for commit and GIT queries."""
    ecosystem = query.get("ecosystem")
    if not ecosystem:
        return None
    base, _, release = ecosystem.partition(":")
    name, version = query["name"], query["version"]
    if base in _LANGUAGE_TYPES:
        purl_type = _LANGUAGE_TYPES[base]
        namespace = None
        short = name
        if purl_type == "maven":
            namespace, _, short = name.partition(":")
        elif purl_type in ("golang", "npm", "composer") and "/" in name:
            namespace, _, short = name.rpartition("/")
        purl = PackageURL(purl_type, namespace, short, version).to_string()
        return Package(name=name, version=version, type=purl_type, purl=purl)
    if base in _DISTRO_TYPES:
        purl_type, distro_id = _DISTRO_TYPES[base]
        release = release.removeprefix("v").removesuffix(":LTS").removeprefix("Leap ")
        return Package(
            name=name, version=version, type=purl_type, purl="", distro=Distro(distro_id, release)
        )
    return None


def replay(feed: Feed, queries: Iterable[Mapping[str, Any]]) -> Replay:
    """Match every query's package and compare record ids present in the feed."""
    local = set(feed.records) | set(feed.withdrawn)
    compared = agreeing = with_local = 0
    differences = []
    for query in queries:
        package = package_for(query)
        if package is None:
            continue
        compared += 1
        findings = match(feed, [package])
        got = {record_id for finding in findings for record_id in finding.record_ids} & local
        expected = set(query["vulns"]) & local
        with_local += bool(expected)
        if got == expected:
            agreeing += 1
        else:
            differences.append(
                Difference(
                    query["ecosystem"],
                    query["name"],
                    query["version"],
                    frozenset(expected - got),
                    frozenset(got - expected),
                )
            )
    return Replay(compared, agreeing, with_local, tuple(differences))


def unexplained(differences: Iterable[Difference]) -> list[Difference]:
    """Return the differences that the two tables above do not explain."""
    left = []
    for difference in differences:
        extra = difference.extra - CHANGED_AFTER_RECORDING.keys()
        extra -= NARROWER_UPSTREAM.get(
            (difference.ecosystem, difference.name, difference.version), frozenset()
        )
        if difference.missing or extra:
            left.append(difference)
    return left
