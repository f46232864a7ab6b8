"""Orderings without upstream vectors here (Maven, NuGet, RubyGems, Packagist), errors and grammar checks."""

from __future__ import annotations

import pytest

from regward.vulns import versions
from regward.vulns.errors import InvalidVersionError, UnsupportedEcosystemError


def assert_order(ecosystem: str, left: str, operator: str, right: str) -> None:
    expected = {"<": -1, "=": 0, ">": 1}[operator]
    assert versions.compare(ecosystem, left, right) == expected, f"{left} {operator} {right}"
    assert versions.compare(ecosystem, right, left) == -expected, f"{right} reversed"


# Examples from the "Version Order Specification" of the Maven POM reference, plus common release names.
MAVEN = [
    ("1", "<", "1.1"),
    ("1-snapshot", "<", "1"),
    ("1", "<", "1-sp"),
    ("1-foo2", "<", "1-foo10"),
    ("1.foo", "<", "1-foo"),
    ("1-foo", "<", "1-1"),
    ("1-1", "<", "1.1"),
    ("1.ga", "=", "1-ga"),
    ("1-ga", "=", "1-0"),
    ("1-0", "=", "1.0"),
    ("1.0", "=", "1"),
    ("1-sp", ">", "1-ga"),
    ("1-sp.1", ">", "1-ga.1"),
    ("1-sp-1", "<", "1-ga-1"),
    ("1-ga-1", "=", "1-1"),
    ("1-a1", "=", "1-alpha-1"),
    ("1.0.0-foo.0.0", "=", "1-foo"),
    ("1.0.0-0.0.0", "=", "1"),
    ("2.0.0.RELEASE", "=", "2.0.0"),
    ("1.2.3.Final", "=", "1.2.3"),
    ("1.0-RC1", "<", "1.0"),
    ("1.0-cr1", "=", "1.0-rc1"),
    ("1.0-alpha1", "<", "1.0-beta1"),
    ("1.0-M1", "<", "1.0-RC1"),
    ("1.0-SNAPSHOT", "<", "1.0"),
    ("1.0-SNAPSHOT", ">", "1.0-rc1"),
    ("2.12.7.1", ">", "2.12.7"),
    ("2.9.10.8", "<", "2.10.0"),
    ("1.sp", ">", "1"),
]

NUGET = [
    ("1.0", "=", "1.0.0.0"),
    ("1.0.0-alpha", "<", "1.0.0"),
    ("1.0.0-Alpha", "=", "1.0.0-alpha"),
    ("1.0.0-alpha.2", "<", "1.0.0-alpha.10"),
    ("1.0.0-alpha.beta", ">", "1.0.0-alpha.1"),
    ("1.0.0+metadata", "=", "1.0.0"),
    ("4.3.1", "<", "4.3.10"),
    ("1.0.0.1", ">", "1.0.0"),
]

RUBYGEMS = [
    ("1.0", "=", "1"),
    ("1.0.a", "<", "1.0"),
    ("1.0.0-beta", "<", "1.0.0"),
    ("1.0.0-beta", "=", "1.0.0.pre.beta"),
    ("1.0.b1", "<", "1.0.b2"),
    ("1.0.a10", ">", "1.0.a9"),
    ("2.7.0", ">", "2.7.0.rc1"),
    ("1.2.3", "<", "1.10"),
    ("5.2.4.3", ">", "5.2.4"),
]

PACKAGIST = [
    ("1.0", "=", "1.0.0"),
    ("v1.0.0", "=", "1.0.0"),
    ("1.0.0-beta1", "<", "1.0.0"),
    ("1.0.0-RC1", ">", "1.0.0-beta2"),
    ("1.0.0-alpha", "<", "1.0.0-beta"),
    ("1.0.0-patch1", ">", "1.0.0"),
    ("1.0.0-dev", "<", "1.0.0-alpha"),
    ("1.0.0.1", ">", "1.0.0"),
    ("2.4.10", ">", "2.4.9"),
    ("1.0.0beta1", "=", "1.0.0-beta1"),
    ("1.0.0-p1", "=", "1.0.0-patch1"),
    ("1.0.0+build5", "=", "1.0.0"),
]

SEMVER_GO = [
    ("v1.6.1-0.20230101000000-abcdefabcdef", "<", "v1.6.1"),
    ("v1.6.1-0.20230101000000-abcdefabcdef", ">", "v1.6.0"),
    ("v0.0.0-20210817142637-7d9622a276b7", "<", "v0.0.1"),
    ("v2.1.0+incompatible", "=", "2.1.0"),
    ("v1.0.0-rc.1", "<", "v1.0.0"),
]


@pytest.mark.parametrize(
    ("ecosystem", "cases"),
    [
        ("Maven", MAVEN),
        ("NuGet", NUGET),
        ("RubyGems", RUBYGEMS),
        ("Packagist", PACKAGIST),
        ("Go", SEMVER_GO),
    ],
)
def test_family_examples(ecosystem: str, cases: list[tuple[str, str, str]]) -> None:
    for left, operator, right in cases:
        assert_order(ecosystem, left, operator, right)


def test_pep440_normalises_leading_zeros() -> None:
    assert_order("PyPI", "2022.12.7", "=", "2022.12.07")


def test_pep440_prerelease_before_final() -> None:
    assert_order("PyPI", "22.10.0rc1", "<", "22.10.0")
    assert_order("PyPI", "22.10.0", "<", "22.10.0.post1")


def test_pep440_local_label_after_public() -> None:
    assert_order("PyPI", "1.0.0", "<", "1.0.0+local")


@pytest.mark.parametrize(
    ("ecosystem", "version"),
    [
        ("Debian", "1.2.3-not-a-debian:version!@#$"),
        ("Debian", ""),
        ("npm", "not-a-version"),
        ("npm", "1.2.3-"),
        ("Go", "v1.x"),
        ("Hackage", "1.0a"),
        ("NuGet", "1.2.3.4.5"),
        ("RubyGems", "1..2"),
        ("Packagist", "dev-main"),
        ("Alpine", "1.0 r0"),
        ("Alpine", "1.0\u00e9"),
        ("PyPI", "1.0 "),
    ],
)
def test_invalid_versions_raise(ecosystem: str, version: str) -> None:
    with pytest.raises(InvalidVersionError, match="invalid .* version"):
        versions.compare(ecosystem, version, "1.0")


def test_invalid_version_error_names_family_and_value() -> None:
    with pytest.raises(InvalidVersionError) as caught:
        versions.parse("Debian:12", "!!")
    assert caught.value.family == "dpkg"
    assert caught.value.version == "!!"


def test_unknown_ecosystem_raises() -> None:
    with pytest.raises(UnsupportedEcosystemError, match="no version ordering for ecosystem 'Nope'"):
        versions.compare("Nope", "1", "2")


@pytest.mark.parametrize(
    ("ecosystem", "family"),
    [
        ("Debian:12", "dpkg"),
        ("Ubuntu:22.04:LTS", "dpkg"),
        ("Alpine:v3.20", "apk"),
        ("Wolfi", "apk"),
        ("Chainguard", "apk"),
        ("Red Hat:enterprise_linux:9::baseos", "rpm"),
        ("AlmaLinux:9", "rpm"),
        ("Rocky Linux:9", "rpm"),
        ("openSUSE:Leap 15.5", "rpm"),
        ("SUSE:Linux Enterprise Server 15 SP5", "rpm"),
        ("PyPI", "pep440"),
        ("npm", "semver"),
        ("Go", "semver"),
        ("crates.io", "semver"),
        ("Hex", "semver"),
        ("Maven", "maven"),
        ("NuGet", "nuget"),
        ("RubyGems", "rubygems"),
        ("Packagist", "packagist"),
        ("Pub", "pub"),
        ("Hackage", "hackage"),
    ],
)
def test_ordering_family_per_ecosystem(ecosystem: str, family: str) -> None:
    assert versions.ordering_for(ecosystem).family == family


@pytest.mark.parametrize(
    ("ecosystem", "version", "canonical"),
    [
        ("Alpine", "20.10.11-r0", True),
        ("Alpine", "20.10.11.r0", False),
        ("Alpine", "1.18.-r2", False),
        ("Alpine", "1.6_rc1-r0", True),
        ("Alpine", "6.6.2p1-r0", True),
        ("Alpine", "0.1_pre2~1234abcd-r3", True),
        ("PyPI", "1.0.post1", True),
        ("PyPI", "0.4m5", False),
        ("npm", "1.2.3-beta.1", True),
        ("npm", "v1.2.3", False),
        ("npm", "1.2", False),
        ("Debian", "1:2.39.5-0+deb12u1", True),
        ("Debian", "a1.0", False),
        ("Red Hat", "1:3.0.7-24.el9", True),
    ],
)
def test_canonical_grammar(ecosystem: str, version: str, canonical: bool) -> None:
    assert versions.ordering_for(ecosystem).is_canonical(version) is canonical


def test_sort_key_orders_rpm_epochs() -> None:
    unsorted = ["1:1.0-1.el9", "2.0-1.el9", "0:1.5-1.el9", "1.0~rc1-1.el9"]
    assert sorted(unsorted, key=versions.sort_key("AlmaLinux:9")) == [
        "1.0~rc1-1.el9",
        "0:1.5-1.el9",
        "2.0-1.el9",
        "1:1.0-1.el9",
    ]
