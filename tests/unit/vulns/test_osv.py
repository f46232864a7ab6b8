"""The OSV record model and ecosystem naming."""

from __future__ import annotations

import json

import pytest

from regward.sbom.model import Distro, Package
from regward.vulns import (
    EventKind,
    OSVRecordError,
    RangeType,
    normalize_ecosystem,
    normalize_name,
    parse_record,
    parse_record_json,
    queries_for,
    record_to_json,
)
from regward.vulns.ecosystems import go_toolchain_version, index_ecosystem

from .conftest import vulns_asset


def test_parse_real_pypi_record() -> None:
    data = json.loads(vulns_asset("records/PYSEC-2021-382.json").read_text())
    parsed = parse_record(data)
    assert parsed.id == "PYSEC-2021-382"
    assert parsed.affected[0].package is not None
    assert parsed.affected[0].package.name == "qutebrowser"
    assert [item.type for item in parsed.affected[0].ranges] == [RangeType.GIT, RangeType.ECOSYSTEM]
    assert parsed.affected[0].ranges[1].events[1].kind == EventKind.FIXED
    assert parsed.affected[0].ranges[1].events[1].version == "1.8.0"
    assert "1.1.2" in parsed.affected[0].versions


def test_parse_json_bytes_equals_parse_object() -> None:
    raw = vulns_asset("records/DSA-3029-1.json").read_bytes()
    assert parse_record_json(raw) == parse_record(json.loads(raw))


def test_record_round_trips_through_json() -> None:
    parsed = parse_record(json.loads(vulns_asset("records/UBUNTU-CVE-2025-38094.json").read_text()))
    assert parse_record(record_to_json(parsed)) == parsed


def test_upstream_and_severity_kept() -> None:
    parsed = parse_record(json.loads(vulns_asset("records/UBUNTU-CVE-2025-38094.json").read_text()))
    assert parsed.upstream == ("CVE-2025-38094",)
    assert parsed.severity[0].type == "Ubuntu"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"modified": "2024-01-01T00:00:00Z"}, "id: Field required"),
        ({"id": "X-1"}, "modified: Field required"),
        (
            {
                "id": "X-1",
                "modified": "x",
                "affected": [
                    {"ranges": [{"type": "SEMVER", "events": [{"introduced": "0", "fixed": "1"}]}]}
                ],
            },
            "exactly one of",
        ),
        (
            {
                "id": "X-1",
                "modified": "x",
                "affected": [{"ranges": [{"type": "SEMVER", "events": [{"broken": "1"}]}]}],
            },
            "exactly one of",
        ),
    ],
)
def test_invalid_records_rejected(data: dict[str, object], message: str) -> None:
    with pytest.raises(OSVRecordError, match=message):
        parse_record(data)


def test_unknown_range_type_kept_as_unknown() -> None:
    parsed = parse_record(
        {
            "id": "X-1",
            "modified": "x",
            "affected": [{"ranges": [{"type": "NEWTYPE", "events": [{"introduced": "0"}]}]}],
        }
    )
    assert parsed.affected[0].ranges[0].type == RangeType.UNKNOWN


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Debian:12", "Debian:12"),
        ("debian:bookworm", "Debian:12"),
        ("Debian:12.4", "Debian:12"),
        ("Debian:sid", "Debian:sid"),
        ("Alpine:v3.20", "Alpine:v3.20"),
        ("Alpine:3.20.3", "Alpine:v3.20"),
        ("alpine:v3.18.4", "Alpine:v3.18"),
        ("Ubuntu:22.04", "Ubuntu:22.04:LTS"),
        ("Ubuntu:22.04:LTS", "Ubuntu:22.04:LTS"),
        ("Ubuntu:23.10", "Ubuntu:23.10"),
        ("Ubuntu:jammy", "Ubuntu:22.04:LTS"),
        ("Ubuntu:Pro:18.04", "Ubuntu:Pro:18.04:LTS"),
        ("Ubuntu:Pro:18.04:LTS", "Ubuntu:Pro:18.04:LTS"),
        ("Red Hat:enterprise_linux:9::baseos", "Red Hat:enterprise_linux:9::baseos"),
        ("AlmaLinux:9", "AlmaLinux:9"),
        ("AlmaLinux:9.4", "AlmaLinux:9"),
        ("Rocky Linux:8.9", "Rocky Linux:8"),
        ("wolfi", "Wolfi"),
        ("pypi", "PyPI"),
        ("CRATES.IO", "crates.io"),
        ("Maven", "Maven"),
    ],
)
def test_normalize_ecosystem(given: str, expected: str) -> None:
    assert normalize_ecosystem(given) == expected


def test_red_hat_streams_share_an_index_ecosystem() -> None:
    assert index_ecosystem("Red Hat:enterprise_linux:9::appstream") == "Red Hat:enterprise_linux:9"
    assert index_ecosystem("Red Hat:enterprise_linux:9::baseos") == "Red Hat:enterprise_linux:9"


def test_debian_release_suffix_is_not_ignored() -> None:
    # osv-scalibr's Parsed.Equal lets a bare "Debian" match every release; here they stay distinct.
    assert index_ecosystem("Debian") != index_ecosystem("Debian:12")


@pytest.mark.parametrize(
    ("ecosystem", "name", "expected"),
    [
        ("PyPI", "Flask_Cors", "flask-cors"),
        ("PyPI", "zope.interface", "zope-interface"),
        ("NuGet", "Newtonsoft.Json", "newtonsoft.json"),
        ("npm", "@Babel/core", "@Babel/core"),
        ("Go", "github.com/Foo/bar", "github.com/Foo/bar"),
    ],
)
def test_normalize_name(ecosystem: str, name: str, expected: str) -> None:
    assert normalize_name(ecosystem, name) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("go1.22.1", "1.22.1"),
        ("go1.22.4 X:boringcrypto", "1.22.4"),
        ("go1.20", "1.20.0"),
        ("go1.21rc2", "1.21.0-rc.2"),
        ("1.19", "1.19.0"),
        ("devel go1.23-abcdef", None),
    ],
)
def test_go_toolchain_version(given: str, expected: str | None) -> None:
    assert go_toolchain_version(given) == expected


def _package(**fields: object) -> Package:
    defaults: dict[str, object] = {"name": "x", "version": "1", "type": "pypi", "purl": ""}
    defaults.update(fields)
    return Package(**defaults)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("package", "ecosystems", "name", "version"),
    [
        (
            _package(
                name="libssl3",
                version="3.0.11-1~deb12u2",
                type="deb",
                source_name="openssl",
                distro=Distro("debian", "12"),
            ),
            ("Debian:12",),
            "openssl",
            "3.0.11-1~deb12u2",
        ),
        (
            _package(
                name="perl-base",
                version="5.36.0-7",
                type="deb",
                purl="pkg:deb/debian/perl-base@5.36.0-7?arch=amd64&upstream=perl&distro=debian-12",
            ),
            ("Debian:12",),
            "perl",
            "5.36.0-7",
        ),
        (
            _package(
                name="libssl3",
                version="3.1.4-r5",
                type="apk",
                source_name="openssl",
                distro=Distro("alpine", "3.20.3"),
            ),
            ("Alpine:v3.20",),
            "openssl",
            "3.1.4-r5",
        ),
        (
            _package(
                name="curl", version="7.88.1-10", type="deb", distro=Distro("ubuntu", "22.04")
            ),
            ("Ubuntu:22.04:LTS",),
            "curl",
            "7.88.1-10",
        ),
        (
            _package(
                name="bash", version="5.1.8-9.el9", type="rpm", distro=Distro("almalinux", "9.4")
            ),
            ("AlmaLinux:9",),
            "bash",
            "5.1.8-9.el9",
        ),
        (
            _package(
                name="Flask_Cors", version="1.0.0", type="pypi", purl="pkg:pypi/flask-cors@1.0.0"
            ),
            ("PyPI",),
            "flask-cors",
            "1.0.0",
        ),
        (
            _package(
                name="jackson-databind",
                version="2.9.8",
                type="maven",
                purl="pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.9.8",
            ),
            ("Maven",),
            "com.fasterxml.jackson.core:jackson-databind",
            "2.9.8",
        ),
        (
            _package(
                name="runc",
                version="v1.0.1",
                type="golang",
                purl="pkg:golang/github.com/opencontainers/runc@v1.0.1",
            ),
            ("Go",),
            "github.com/opencontainers/runc",
            "v1.0.1",
        ),
        (
            _package(
                name="stdlib",
                version="go1.22.4 X:boringcrypto",
                type="golang",
                purl="pkg:golang/stdlib@go1.22.4",
            ),
            ("Go",),
            "stdlib",
            "1.22.4",
        ),
        (
            _package(
                name="linux-image-amd64",
                version="6.12.90-2~bpo12+1",
                type="deb",
                source_name="linux",
                distro=Distro("debian", "12"),
            ),
            ("Debian:13", "Debian:12"),
            "linux",
            "6.12.90-2~bpo12+1",
        ),
    ],
)
def test_queries_for(
    package: Package, ecosystems: tuple[str, ...], name: str, version: str
) -> None:
    query = queries_for(package)[0]
    assert query.ecosystems == ecosystems
    assert query.name == name
    assert query.version == version


def test_queries_for_wolfi_use_the_subpackage_name() -> None:
    package = _package(
        name="openssl-config",
        version="3.3.0-r1",
        type="apk",
        source_name="openssl",
        distro=Distro("wolfi", "20230201"),
    )
    assert [(q.ecosystems, q.name) for q in queries_for(package)] == [
        (("Wolfi",), "openssl-config")
    ]


def test_queries_for_package_without_distro_is_empty() -> None:
    assert queries_for(_package(name="bash", version="5.2", type="deb")) == ()
