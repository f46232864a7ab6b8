"""Range evaluation, severity, fixed versions and match options."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from regward.sbom.model import Distro, Package
from regward.vulns import (
    Feed,
    MatchNote,
    MatchOptions,
    MissingEpoch,
    Severity,
    load,
    match,
    match_report,
    parse_record,
    record_severity,
)

from .conftest import ecosystem_range, feed_of, record, vulns_asset

CRITICAL_V3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
LOW_V3 = "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N"
HIGH_V2 = "AV:N/AC:L/Au:N/C:C/I:C/A:C"
CRITICAL_V4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"


def pypi(name: str, version: str) -> Package:
    return Package(name=name, version=version, type="pypi", purl=f"pkg:pypi/{name}@{version}")


def found_ids(feed: Feed, package: Package, options: MatchOptions | None = None) -> list[str]:
    return [finding.id for finding in match(feed, [package], options)]


SIMPLE = record("PYSEC-1", "PyPI", "demo", ecosystem_range(("introduced", "1.0"), ("fixed", "1.5")))


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("0.9", False),
        ("1.0", True),
        ("1.4.99", True),
        ("1.5", False),
        ("2.0", False),
        ("1.5rc1", True),
    ],
)
def test_introduced_inclusive_fixed_exclusive(version: str, affected: bool) -> None:
    assert found_ids(feed_of(SIMPLE), pypi("demo", version)) == (["PYSEC-1"] if affected else [])


@pytest.mark.parametrize(
    ("version", "affected"), [("1.11.0", True), ("1.11.1", False), ("0.1", True)]
)
def test_last_affected_inclusive(version: str, affected: bool) -> None:
    feed = load(vulns_asset("records/PYSEC-2022-42969.json"))
    assert found_ids(feed, pypi("py", version)) == (["PYSEC-2022-42969"] if affected else [])


@pytest.mark.parametrize(("version", "affected"), [("1.9", True), ("2.0", False), ("2.5", False)])
def test_limit_bounds_the_range(version: str, affected: bool) -> None:
    limited = record(
        "X-1", "PyPI", "demo", ecosystem_range(("introduced", "1.0"), ("limit", "2.0"))
    )
    assert found_ids(feed_of(limited), pypi("demo", version)) == (["X-1"] if affected else [])


@pytest.mark.parametrize(
    ("version", "affected"),
    [("0.5", True), ("1.0", False), ("1.2", True), ("1.3", False), ("3.0", True)],
)
def test_several_intervals_and_ranges(version: str, affected: bool) -> None:
    item = record(
        "X-1",
        "PyPI",
        "demo",
        ecosystem_range(
            ("introduced", "0"), ("fixed", "1.0"), ("introduced", "1.2"), ("fixed", "1.3")
        ),
        ecosystem_range(("introduced", "3.0")),
    )
    assert found_ids(feed_of(item), pypi("demo", version)) == (["X-1"] if affected else [])


def test_versions_list_matches_equal_versions() -> None:
    listed = record("X-1", "PyPI", "demo", versions=["1.0"])
    assert found_ids(feed_of(listed), pypi("demo", "1.0")) == ["X-1"]
    assert found_ids(feed_of(listed), pypi("demo", "1.0.0")) == ["X-1"]
    assert found_ids(feed_of(listed), pypi("demo", "1.0.1")) == []


def test_git_range_first_not_hiding_others() -> None:
    # PYSEC-2021-382 lists a GIT range before its ECOSYSTEM range; osv-scalibr's local matcher
    # stopped at the GIT range and missed it.
    data = json.loads(vulns_asset("records/PYSEC-2021-382.json").read_text())
    data["affected"][0]["versions"] = []
    feed = feed_of(data)
    assert found_ids(feed, pypi("qutebrowser", "2.3.0")) == ["PYSEC-2021-382"]
    assert found_ids(feed, pypi("qutebrowser", "2.4.0")) == []


def test_semver_range_with_prerelease_introduced() -> None:
    item = record(
        "RUSTSEC-1",
        "crates.io",
        "demo",
        ecosystem_range(("introduced", "0.0.0-0"), ("fixed", "0.6.1"), kind="SEMVER"),
    )
    package = Package(name="demo", version="0.6.0", type="cargo", purl="pkg:cargo/demo@0.6.0")
    assert found_ids(feed_of(item), package) == ["RUSTSEC-1"]


def test_open_ended_range_is_noted() -> None:
    item = record(
        "GO-1", "Go", "example.com/m", ecosystem_range(("introduced", "0"), kind="SEMVER")
    )
    package = Package(
        name="m", version="v9.9.9", type="golang", purl="pkg:golang/example.com/m@v9.9.9"
    )
    [finding] = match(feed_of(item), [package])
    assert finding.notes == (MatchNote.OPEN_ENDED,)
    assert finding.fixed == ()


def test_fixed_versions_above_installed_in_order() -> None:
    item = record(
        "X-1",
        "PyPI",
        "demo",
        ecosystem_range(
            ("introduced", "0"), ("fixed", "1.10"), ("introduced", "2.0"), ("fixed", "2.3")
        ),
        ecosystem_range(("introduced", "0"), ("fixed", "1.9")),
    )
    [finding] = match(feed_of(item), [pypi("demo", "1.2")])
    assert finding.fixed == ("1.9", "1.10", "2.3")


def test_package_without_version_is_not_evaluated() -> None:
    report = match_report(feed_of(SIMPLE), [pypi("demo", "")])
    assert report.findings == ()
    assert report.not_evaluated[0].reason == "no version"


def test_unparseable_installed_version_does_not_match() -> None:
    item = record(
        "X-1",
        "npm",
        "demo",
        ecosystem_range(("introduced", "0"), ("fixed", "2.0.0"), kind="SEMVER"),
    )
    package = Package(name="demo", version="not-a-version", type="npm", purl="pkg:npm/demo@x")
    assert match(feed_of(item), [package]) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"severity": [{"type": "CVSS_V3", "score": CRITICAL_V3}]}, Severity.CRITICAL),
        ({"severity": [{"type": "CVSS_V3", "score": LOW_V3}]}, Severity.LOW),
        ({"severity": [{"type": "CVSS_V2", "score": HIGH_V2}]}, Severity.HIGH),
        ({"severity": [{"type": "CVSS_V4", "score": CRITICAL_V4}]}, Severity.CRITICAL),
        (
            {
                "severity": [
                    {"type": "CVSS_V2", "score": HIGH_V2},
                    {"type": "CVSS_V3", "score": LOW_V3},
                ]
            },
            Severity.HIGH,
        ),
        ({"severity": [{"type": "CVSS_V3", "score": "garbage"}]}, None),
        ({"database_specific": {"severity": "MODERATE"}}, Severity.MEDIUM),
        ({"severity": [{"type": "Ubuntu", "score": "negligible"}]}, Severity.LOW),
        ({}, None),
    ],
)
def test_record_severity(fields: dict[str, Any], expected: Severity | None) -> None:
    assert record_severity(parse_record(record("X-1", "PyPI", "demo", **fields))) == expected


def test_debian_urgency_word() -> None:
    data = record("DEBIAN-CVE-1", "Debian:12", "x")
    data["affected"][0]["ecosystem_specific"] = {"urgency": "high"}
    assert record_severity(parse_record(data)) == Severity.HIGH


def test_errata_summary_prefix_for_almalinux() -> None:
    data = record("ALSA-2024:1", "AlmaLinux:9", "x", summary="Important: openssl security update")
    assert record_severity(parse_record(data)) == Severity.HIGH
    other = record("PYSEC-1", "PyPI", "x", summary="Important: not an erratum")
    assert record_severity(parse_record(other)) is None


def test_severity_falls_back_to_alias_records_in_feed() -> None:
    go = record(
        "GO-1",
        "Go",
        "example.com/m",
        ecosystem_range(("introduced", "0"), ("fixed", "1.2.0"), kind="SEMVER"),
        aliases=["GHSA-1"],
    )
    ghsa = record("GHSA-1", "npm", "unrelated", database_specific={"severity": "CRITICAL"})
    package = Package(
        name="m", version="v1.0.0", type="golang", purl="pkg:golang/example.com/m@v1.0.0"
    )
    [finding] = match(feed_of(go, ghsa), [package])
    assert finding.id == "GO-1"
    assert finding.severity == Severity.CRITICAL
    assert "GHSA-1" in finding.aliases


def test_severity_unknown_without_evidence() -> None:
    [finding] = match(feed_of(SIMPLE), [pypi("demo", "1.0")])
    assert finding.severity == Severity.UNKNOWN


def test_severity_order() -> None:
    assert Severity.UNKNOWN < Severity.LOW < Severity.MEDIUM < Severity.HIGH < Severity.CRITICAL
    assert max([Severity.HIGH, Severity.CRITICAL, Severity.LOW]) == Severity.CRITICAL
    assert Severity("high") == "high"


def test_informational_rustsec_noted() -> None:
    data = record(
        "RUSTSEC-2020-1",
        "crates.io",
        "old",
        ecosystem_range(("introduced", "0.0.0-0"), kind="SEMVER"),
    )
    data["affected"][0]["database_specific"] = {"informational": "unmaintained"}
    package = Package(name="old", version="1.0.0", type="cargo", purl="pkg:cargo/old@1.0.0")
    [finding] = match(feed_of(data), [package])
    assert MatchNote.INFORMATIONAL in finding.notes


def test_rpm_missing_epoch_policy() -> None:
    data = record(
        "ALSA-1",
        "AlmaLinux:9",
        "openssl",
        ecosystem_range(("introduced", "0"), ("fixed", "1:3.0.7-24.el9")),
    )
    package = Package(
        name="openssl",
        version="3.0.7-27.el9",
        type="rpm",
        purl="",
        distro=Distro("almalinux", "9.4"),
    )
    feed = feed_of(data)
    assert found_ids(feed, package) == []
    assert found_ids(feed, package, MatchOptions(missing_epoch=MissingEpoch.ZERO)) == ["ALSA-1"]


def test_match_runs_in_a_worker_thread() -> None:
    feed = feed_of(SIMPLE)

    async def scan() -> list[str]:
        findings = await asyncio.to_thread(match, feed, [pypi("demo", "1.1")])
        return [finding.id for finding in findings]

    assert asyncio.run(scan()) == ["PYSEC-1"]


def test_real_requests_finding() -> None:
    feed = load(vulns_asset("records"))
    [finding] = match(feed, [pypi("requests", "2.19.0")])
    assert finding.id == "PYSEC-2018-28"
    assert finding.aliases == ("CVE-2018-18074", "GHSA-x84v-xcm2-53pg")
    assert finding.fixed == ("2.20.0",)
    assert finding.ecosystem == "PyPI"
    assert finding.record_ids == ("PYSEC-2018-28",)


def test_advisory_folded_when_all_its_cves_found() -> None:
    debian_1 = record(
        "DEBIAN-CVE-1",
        "Debian:12",
        "x",
        ecosystem_range(("introduced", "0"), ("fixed", "2.0-1")),
        upstream=["CVE-1"],
    )
    debian_2 = record(
        "DEBIAN-CVE-2",
        "Debian:12",
        "x",
        ecosystem_range(("introduced", "0"), ("fixed", "2.0-1")),
        upstream=["CVE-2"],
    )
    dsa = record(
        "DSA-1",
        "Debian:12",
        "x",
        ecosystem_range(("introduced", "0"), ("fixed", "2.0-1")),
        upstream=["CVE-1", "CVE-2"],
    )
    package = Package(name="x", version="1.0-1", type="deb", purl="", distro=Distro("debian", "12"))
    findings = match(feed_of(debian_1, debian_2, dsa), [package])
    assert [f.id for f in findings] == ["DEBIAN-CVE-1", "DEBIAN-CVE-2"]
    assert findings[0].record_ids == ("DEBIAN-CVE-1", "DSA-1")
    assert findings[1].record_ids == ("DEBIAN-CVE-2", "DSA-1")
    assert "CVE-1" in findings[0].aliases
    assert "DSA-1" in findings[0].aliases


def test_advisory_kept_when_a_cve_is_missing() -> None:
    debian_1 = record(
        "DEBIAN-CVE-1",
        "Debian:12",
        "x",
        ecosystem_range(("introduced", "0"), ("fixed", "2.0-1")),
        upstream=["CVE-1"],
    )
    dsa = record(
        "DSA-1",
        "Debian:12",
        "x",
        ecosystem_range(("introduced", "0"), ("fixed", "2.0-1")),
        upstream=["CVE-1", "CVE-2"],
    )
    package = Package(name="x", version="1.0-1", type="deb", purl="", distro=Distro("debian", "12"))
    findings = match(feed_of(debian_1, dsa), [package])
    assert [f.id for f in findings] == ["DEBIAN-CVE-1", "DSA-1"]
    assert set(findings[1].aliases) == {"CVE-1", "CVE-2"}


def test_alpine_secdb_finding_on_origin() -> None:
    feed = load(vulns_asset("alpine-secdb/v3.8/main.yaml"))
    expat = Package(
        name="expat", version="2.2.7-r0", type="apk", purl="", distro=Distro("alpine", "3.8.4")
    )
    [finding] = match(feed, [expat])
    assert finding.id == "ALPINE-CVE-2019-15903"
    assert finding.aliases == ("CVE-2019-15903",)
    assert finding.fixed == ("2.2.7-r1",)
    assert finding.ecosystem == "Alpine:v3.8"


def test_ubuntu_esm_build_consults_pro_data() -> None:
    pro = record(
        "UBUNTU-CVE-1",
        "Ubuntu:Pro:18.04:LTS",
        "curl",
        ecosystem_range(("introduced", "0"), ("fixed", "7.58.0-2ubuntu3.24+esm2")),
    )
    esm = Package(
        name="curl",
        version="7.58.0-2ubuntu3.24+esm1",
        type="deb",
        purl="",
        distro=Distro("ubuntu", "18.04"),
    )
    assert found_ids(feed_of(pro), esm) == ["UBUNTU-CVE-1"]
