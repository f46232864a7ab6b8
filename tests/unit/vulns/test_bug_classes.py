"""One test per recurring scanner bug class: each asserts the right behaviour, not the bug."""

from __future__ import annotations

from pathlib import Path

from regward.sbom.model import Distro, Package
from regward.vulns import (
    FeedStore,
    Finding,
    MatchNote,
    MatchOptions,
    Severity,
    load,
    match,
    match_report,
    versions,
)

from .conftest import ecosystem_range, feed_of, record, vulns_asset

DEBIAN_12 = Distro("debian", "12")


def deb(name: str, version: str, **fields: object) -> Package:
    defaults: dict[str, object] = {
        "type": "deb",
        "purl": f"pkg:deb/debian/{name}@{version}",
        "distro": DEBIAN_12,
    }
    defaults.update(fields)
    return Package(name=name, version=version, **defaults)  # type: ignore[arg-type]


def apk(name: str, version: str, release: str = "3.20.3", **fields: object) -> Package:
    defaults: dict[str, object] = {
        "type": "apk",
        "purl": f"pkg:apk/alpine/{name}@{version}",
        "distro": Distro("alpine", release),
    }
    defaults.update(fields)
    return Package(name=name, version=version, **defaults)  # type: ignore[arg-type]


def ids(findings: list[Finding]) -> list[str]:
    return [finding.id for finding in findings]


OPENSSL_DEBIAN = record(
    "DEBIAN-CVE-2024-5535",
    "Debian:12",
    "openssl",
    ecosystem_range(("introduced", "0"), ("fixed", "3.0.14-1~deb12u1")),
    upstream=["CVE-2024-5535"],
)


def test_debian_binary_package_matched_by_source_name() -> None:
    # osv-scanner#1422: querying the binary name libssl3 found nothing.
    libssl3 = deb("libssl3", "3.0.11-1~deb12u2", source_name="openssl")
    assert ids(match(feed_of(OPENSSL_DEBIAN), [libssl3])) == ["DEBIAN-CVE-2024-5535"]
    # Without a Source: field the binary name is the source name.
    openssl = deb("openssl", "3.0.11-1~deb12u2")
    assert ids(match(feed_of(OPENSSL_DEBIAN), [openssl])) == ["DEBIAN-CVE-2024-5535"]


def test_purl_upstream_qualifier_gives_source_name() -> None:
    # dependency-track#6957: perl-base (upstream=perl) missed records keyed on perl.
    perl_record = record(
        "DEBIAN-CVE-2023-47038",
        "Debian:12",
        "perl",
        ecosystem_range(("introduced", "0"), ("fixed", "5.36.0-7+deb12u1")),
    )
    perl_base = Package(
        name="perl-base",
        version="5.36.0-7",
        type="deb",
        purl="pkg:deb/debian/perl-base@5.36.0-7?arch=amd64&upstream=perl&distro=debian-12",
    )
    assert ids(match(feed_of(perl_record), [perl_base])) == ["DEBIAN-CVE-2023-47038"]


def test_source_version_used_not_binary_version() -> None:
    # wazuh#24306: libldb2's own version 2:2.6.2+samba... compared with samba's fix gave a false positive.
    samba = record(
        "DEBIAN-CVE-2016-2110",
        "Debian:12",
        "samba",
        ecosystem_range(("introduced", "0"), ("fixed", "2:4.3.7+dfsg-1")),
    )
    libldb2 = deb(
        "libldb2",
        "2:2.6.2+samba4.17.12+dfsg-0+deb12u1",
        source_name="samba",
        source_version="2:4.17.12+dfsg-0+deb12u1",
    )
    assert match(feed_of(samba), [libldb2]) == []
    # The binary version alone would have been judged affected.
    without_source_version = deb(
        "libldb2", "2:2.6.2+samba4.17.12+dfsg-0+deb12u1", source_name="samba"
    )
    assert ids(match(feed_of(samba), [without_source_version])) == ["DEBIAN-CVE-2016-2110"]


def test_debian_epoch_and_tilde_ordering() -> None:
    # syft#3663, dependency-track#5894: the epoch outranks the upstream version, and ~ sorts lowest.
    assert versions.compare("Debian:12", "1:2.39.5-0+deb12u1", "2.40-1") == 1
    assert versions.compare("Debian:12", "2:9.0.0", "1:10.0") == 1
    assert versions.compare("Debian:12", "2.39.5-0+deb12u1~1", "2.39.5-0+deb12u1") == -1
    git = record(
        "DEBIAN-CVE-2024-32002",
        "Debian:12",
        "git",
        ecosystem_range(("introduced", "0"), ("fixed", "1:2.39.5-0+deb12u1")),
    )
    assert match(feed_of(git), [deb("git", "1:2.39.5-0+deb12u1")]) == []
    assert ids(match(feed_of(git), [deb("git", "1:2.39.2-1.1")])) == ["DEBIAN-CVE-2024-32002"]


def test_rpm_epoch_missing_on_installed_side() -> None:
    # grype#437: an epoch on only one side flagged fixed packages. ALSA-2023:0946 fixes openssl in 1:3.0.1-47.el9_1.
    feed = load(vulns_asset("records/ALSA-2023:0946.json"))
    alma = Distro("almalinux", "9.1")
    no_epoch_fixed = Package(
        name="openssl", version="3.0.1-47.el9_1", type="rpm", purl="", distro=alma
    )
    with_epoch_fixed = Package(
        name="openssl", version="1:3.0.1-47.el9_1", type="rpm", purl="", distro=alma
    )
    with_epoch_old = Package(
        name="openssl-libs", version="1:3.0.1-43.el9_0", type="rpm", purl="", distro=alma
    )
    assert match(feed, [no_epoch_fixed, with_epoch_fixed]) == []
    [finding] = match(feed, [with_epoch_old])
    assert finding.id == "ALSA-2023:0946"
    assert finding.fixed == ("1:3.0.1-47.el9_1",)
    assert finding.severity == Severity.MEDIUM


def test_downstream_epoch_bump_needs_an_override() -> None:
    # grype#3507: Raspberry Pi OS rebuilds as 1:…+rpt1, which sorts above every Debian fix. By dpkg
    # rules that is "not affected"; a per-distro option drops the downstream epoch.
    fixed_in_debian = record(
        "DEBIAN-CVE-2024-1",
        "Debian:12",
        "libcamera",
        ecosystem_range(("introduced", "0"), ("fixed", "0.3.0-1")),
    )
    raspbian = deb(
        "libcamera0.2",
        "1:0.2.0+rpt20240215-1",
        source_name="libcamera",
        distro=Distro("raspbian", "12"),
    )
    assert match(feed_of(fixed_in_debian), [raspbian]) == []
    override = MatchOptions(ignore_installed_epoch_for=frozenset({"raspbian"}))
    assert ids(match(feed_of(fixed_in_debian), [raspbian], override)) == ["DEBIAN-CVE-2024-1"]


def test_alpine_rc_sorts_before_release() -> None:
    # trivy#245: jq 1.6-r0 was flagged with fixed 1.6_rc1-r0.
    jq = record(
        "ALPINE-CVE-2016-4074",
        "Alpine:v3.20",
        "jq",
        ecosystem_range(("introduced", "0"), ("fixed", "1.6_rc1-r0")),
    )
    assert match(feed_of(jq), [apk("jq", "1.6-r0")]) == []
    assert ids(match(feed_of(jq), [apk("jq", "1.5-r4")])) == ["ALPINE-CVE-2016-4074"]


def test_apk_origin_or_package_name() -> None:
    # trivy#2933: subpackages (libssl3) and packages without o: produced no findings.
    openssl = record(
        "ALPINE-CVE-2024-5535",
        "Alpine:v3.20",
        "openssl",
        ecosystem_range(("introduced", "0"), ("fixed", "3.3.1-r1")),
    )
    busybox = record(
        "ALPINE-CVE-2023-42363",
        "Alpine:v3.20",
        "busybox",
        ecosystem_range(("introduced", "0"), ("fixed", "1.36.1-r17")),
    )
    feed = feed_of(openssl, busybox)
    libssl3 = apk("libssl3", "3.3.1-r0", source_name="openssl")
    busybox_without_origin = apk("busybox", "1.36.1-r15")
    found = match(feed, [libssl3, busybox_without_origin])
    assert [(f.id, f.package.name) for f in found] == [
        ("ALPINE-CVE-2024-5535", "libssl3"),
        ("ALPINE-CVE-2023-42363", "busybox"),
    ]


def test_malformed_secdb_version_reported_not_matched() -> None:
    # trivy#1408: a fix spelled 10.2.22.r0 (Alpine v3.8 secdb, mariadb) kept 10.2.22-r0 flagged.
    feed = load(vulns_asset("alpine-secdb/v3.8/main.yaml"))
    mariadb = apk("mariadb", "10.2.22-r0", release="3.8.5")
    report = match_report(feed, [mariadb])
    malformed = {item.version for item in report.unparseable}
    assert malformed == {"10.2.22.r0", "10.2.24.r0", "10.2.26.r0"}
    assert all(item.package is mariadb for item in report.unparseable)
    flagged_by_malformed = {item.record_id for item in report.unparseable}
    assert not flagged_by_malformed & {finding.id for finding in report.findings}


def test_go_pseudo_version_low_confidence() -> None:
    # osv-scanner#1754 and others: pseudo-versions were judged against tagged fixes.
    item = record(
        "GO-2023-1",
        "Go",
        "example.com/lib",
        ecosystem_range(("introduced", "0"), ("fixed", "1.6.1"), kind="SEMVER"),
    )
    pseudo = Package(
        name="lib",
        version="v1.6.1-0.20230101000000-abcdefabcdef",
        type="golang",
        purl="pkg:golang/example.com/lib@v1.6.1-0.20230101000000-abcdefabcdef",
    )
    [finding] = match(feed_of(item), [pseudo])
    assert MatchNote.GO_PSEUDO_VERSION in finding.notes
    report = match_report(feed_of(item), [pseudo], MatchOptions(ignore_go_pseudo_versions=True))
    assert report.findings == ()
    assert report.not_evaluated[0].reason.startswith("Go pseudo-version")
    tagged = Package(
        name="lib", version="v1.6.1", type="golang", purl="pkg:golang/example.com/lib@v1.6.1"
    )
    assert match(feed_of(item), [tagged]) == []


def test_go_toolchain_experiment_suffix_stripped() -> None:
    # grype#1851: "go1.22.4 X:boringcrypto" was not parsed, hiding stdlib findings.
    stdlib = record(
        "GO-2024-2963",
        "Go",
        "stdlib",
        ecosystem_range(("introduced", "1.22.0-0"), ("fixed", "1.22.5"), kind="SEMVER"),
    )
    toolchain = Package(
        name="stdlib",
        version="go1.22.4 X:boringcrypto",
        type="golang",
        purl="pkg:golang/stdlib@go1.22.4",
    )
    assert ids(match(feed_of(stdlib), [toolchain])) == ["GO-2024-2963"]


def test_pep440_zero_padding_prerelease_and_local() -> None:
    # grype#1034/#1172/#986: 2022.12.7 vs 2022.12.07, and 22.10.0 below 22.10.0rc1.
    certifi = record(
        "PYSEC-2022-42986",
        "PyPI",
        "certifi",
        ecosystem_range(("introduced", "0"), ("fixed", "2022.12.07")),
    )
    assert match(feed_of(certifi), [pypi("certifi", "2022.12.7")]) == []
    black = record(
        "PYSEC-X", "PyPI", "black", ecosystem_range(("introduced", "0"), ("fixed", "22.10.0rc1"))
    )
    assert match(feed_of(black), [pypi("black", "22.10.0")]) == []
    assert ids(match(feed_of(certifi), [pypi("certifi", "2022.9.24+local")])) == [
        "PYSEC-2022-42986"
    ]


def pypi(name: str, version: str) -> Package:
    return Package(name=name, version=version, type="pypi", purl=f"pkg:pypi/{name}@{version}")


def test_introduced_only_range_is_affected_and_flagged() -> None:
    # github/advisory-database#7295: a canary range with only "introduced" is affected per the spec.
    canary = record(
        "GHSA-next",
        "npm",
        "next",
        ecosystem_range(("introduced", "16.0.0-canary.0"), kind="SEMVER"),
    )
    nextjs = Package(name="next", version="16.2.2", type="npm", purl="pkg:npm/next@16.2.2")
    [finding] = match(feed_of(canary), [nextjs])
    assert finding.notes == (MatchNote.OPEN_ENDED,)


def test_aliases_deduplicated_with_best_fix_and_severity() -> None:
    # grype#3511/#1401/#1202: one issue as GO-… and GHSA-…, the duplicate lacking the fix.
    go = record(
        "GO-2022-0493",
        "Go",
        "golang.org/x/sys",
        ecosystem_range(
            ("introduced", "0"), ("fixed", "0.0.0-20220412211240-33da011f77ad"), kind="SEMVER"
        ),
        aliases=["CVE-2022-29526", "GHSA-p782-xgp4-8hr8"],
    )
    ghsa = record(
        "GHSA-p782-xgp4-8hr8",
        "Go",
        "golang.org/x/sys",
        ecosystem_range(("introduced", "0"), kind="SEMVER"),
        aliases=["CVE-2022-29526"],
        database_specific={"severity": "MODERATE"},
    )
    sys_module = Package(
        name="sys",
        version="v0.0.0-20210817142637-7d9622a276b7",
        type="golang",
        purl="pkg:golang/golang.org/x/sys@v0.0.0-20210817142637-7d9622a276b7",
    )
    [finding] = match(feed_of(go, ghsa), [sys_module])
    assert finding.id == "GHSA-p782-xgp4-8hr8"
    assert finding.record_ids == ("GHSA-p782-xgp4-8hr8", "GO-2022-0493")
    assert finding.fixed == ("0.0.0-20220412211240-33da011f77ad",)
    assert finding.severity == Severity.MEDIUM
    assert "GO-2022-0493" in finding.aliases
    assert "CVE-2022-29526" in finding.aliases


def test_withdrawn_record_dropped_and_unblocks_after_sync(tmp_path: Path) -> None:
    # osv.dev#2332, dependency-track#4604: withdrawn advisories kept being reported.
    import json

    source = tmp_path / "source"
    source.mkdir()
    active = record(
        "GHSA-w1", "PyPI", "demo", ecosystem_range(("introduced", "0"), ("fixed", "2.0"))
    )
    (source / "GHSA-w1.json").write_text(json.dumps(active))
    store = FeedStore(tmp_path / "store")
    store.sync(source)
    assert ids(match(store.load(), [pypi("demo", "1.0")])) == ["GHSA-w1"]
    withdrawn = dict(active, withdrawn="2025-02-01T00:00:00Z", modified="2025-02-01T00:00:00Z")
    (source / "GHSA-w1.json").write_text(json.dumps(withdrawn))
    result = store.sync(source)
    assert result.changed_ids == frozenset({"GHSA-w1"})
    assert ("PyPI", "demo") in result.changed_keys
    assert match(store.load(), [pypi("demo", "1.0")]) == []


def test_vendored_component_keeps_its_location() -> None:
    # pip#14318: setuptools vendored in pip/_vendor; the finding must keep where it is.
    setuptools_record = record(
        "PYSEC-2025-49",
        "PyPI",
        "setuptools",
        ecosystem_range(("introduced", "0"), ("fixed", "78.1.1")),
        aliases=["CVE-2025-47273"],
    )
    vendored = Package(
        name="setuptools",
        version="70.3.0",
        type="pypi",
        purl="pkg:pypi/setuptools@70.3.0",
        locations=("usr/lib/python3/dist-packages/pip/_vendor/bom.cdx.json",),
        layer_digest="sha256:" + "a" * 64,
    )
    [finding] = match(feed_of(setuptools_record), [vendored])
    assert finding.package.locations == ("usr/lib/python3/dist-packages/pip/_vendor/bom.cdx.json",)
    assert finding.package.layer_digest == "sha256:" + "a" * 64


def test_debian_backport_judged_by_next_release() -> None:
    # wazuh#36985: a ~bpo12 kernel was judged by bookworm data where the CVE is still open.
    linux = {
        "id": "DEBIAN-CVE-2025-1",
        "modified": "2025-01-01T00:00:00Z",
        "upstream": ["CVE-2025-1"],
        "affected": [
            {
                "package": {"ecosystem": "Debian:12", "name": "linux"},
                "ranges": [ecosystem_range(("introduced", "0"))],
            },
            {
                "package": {"ecosystem": "Debian:13", "name": "linux"},
                "ranges": [ecosystem_range(("introduced", "0"), ("fixed", "6.12.88-1"))],
            },
        ],
    }
    assert versions.compare("Debian:13", "6.12.90-2~bpo12+1", "6.12.88-1") == 1
    backport = deb("linux-image-6.12.90+bpo-amd64", "6.12.90-2~bpo12+1", source_name="linux")
    assert match(feed_of(linux), [backport]) == []
    older_backport = deb("linux-image-6.12.80+bpo-amd64", "6.12.80-1~bpo12+1", source_name="linux")
    [finding] = match(feed_of(linux), [older_backport])
    assert finding.ecosystem == "Debian:13"
    assert MatchNote.BACKPORT_RELEASE in finding.notes
    bookworm_build = deb("linux-image-amd64", "6.1.129-1", source_name="linux")
    assert ids(match(feed_of(linux), [bookworm_build])) == ["DEBIAN-CVE-2025-1"]


def test_wolfi_subpackages_matched_by_their_own_name() -> None:
    # grype#3256: origin-level matching flagged subpackages that Wolfi's per-package data leaves out.
    advisory = {
        "id": "CGA-1",
        "modified": "2025-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "Wolfi", "name": "glibc"},
                "ranges": [ecosystem_range(("introduced", "0"), ("fixed", "2.40-r3"))],
            },
            {
                "package": {"ecosystem": "Wolfi", "name": "glibc-locale-posix"},
                "ranges": [ecosystem_range(("introduced", "0"), ("fixed", "2.40-r3"))],
            },
        ],
    }
    wolfi = Distro("wolfi", "20230201")
    glibc = Package(
        name="glibc",
        version="2.40-r2",
        type="apk",
        purl="pkg:apk/wolfi/glibc@2.40-r2",
        distro=wolfi,
    )
    locale = Package(
        name="glibc-locale-posix",
        version="2.40-r2",
        type="apk",
        purl="",
        source_name="glibc",
        distro=wolfi,
    )
    unaffected = Package(
        name="ld-linux", version="2.40-r2", type="apk", purl="", source_name="glibc", distro=wolfi
    )
    found = match(feed_of(advisory), [glibc, locale, unaffected])
    assert [(f.id, f.package.name) for f in found] == [
        ("CGA-1", "glibc"),
        ("CGA-1", "glibc-locale-posix"),
    ]
