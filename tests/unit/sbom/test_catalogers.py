"""Catalogers, run over small images built from real formats."""

from __future__ import annotations

import io
import json
import sqlite3
import struct
import zipfile
from pathlib import Path

import pytest

from regward.sbom.catalog import catalog_filesystem, make_selector
from regward.sbom.catalogers import default_catalogers
from regward.sbom.catalogers.golang import read_buildinfo
from regward.sbom.catalogers.java import read_java_archive, split_filename
from regward.sbom.catalogers.rpm import parse_header_blob
from regward.sbom.filesystem import Budget, merge_layers, read_layer
from regward.sbom.interface import Catalog, Limits
from regward.sbom.model import Package
from tests.support.layers import Entry, make_tar, symlink
from tests.unit.sbom.elf import go_binary, go_binary_pointers

DEBIAN = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
ALPINE = b"ID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME='Alpine Linux v3.20'\n"


def catalog_of(*layers: list[Entry] | dict[str, bytes], limits: Limits | None = None) -> Catalog:
    chosen = limits or Limits()
    catalogers = default_catalogers(chosen)
    selector = make_selector(catalogers)
    budget = Budget(chosen)
    indexes = [
        read_layer(io.BytesIO(make_tar(entries)), f"sha256:{n}", selector, budget)
        for n, entries in enumerate(layers, start=1)
    ]
    return catalog_filesystem(merge_layers(indexes), catalogers=catalogers, limits=chosen)


def by_name(catalog: Catalog, package_type: str) -> dict[str, Package]:
    return {p.name: p for p in catalog.packages if p.type == package_type}


STATUS = b"""Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.15-1~deb12u1
Description: Secure Sockets Layer toolkit
 with a continuation line

Package: libldb2
Status: install ok installed
Architecture: amd64
Source: samba (2:4.17.12+dfsg-0+deb12u1)
Version: 2:2.6.2+samba4.17.12+dfsg-0+deb12u1

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: perl-base
Status: install ok installed
Architecture: amd64
Source: perl
Version: 5.36.0-7+deb12u1
"""


def test_distro_from_os_release_symlink() -> None:
    catalog = catalog_of(
        [Entry("usr/lib/os-release", DEBIAN), symlink("etc/os-release", "../usr/lib/os-release")]
    )
    assert catalog.distro is not None
    assert catalog.distro.id == "debian"
    assert catalog.distro.version_id == "12"
    assert catalog.distro.pretty_name == "Debian GNU/Linux 12 (bookworm)"


def test_dpkg_status_packages() -> None:
    catalog = catalog_of({"etc/os-release": DEBIAN, "var/lib/dpkg/status": STATUS})
    debs = by_name(catalog, "deb")
    assert sorted(debs) == ["libldb2", "libssl3", "perl-base"]
    ldb = debs["libldb2"]
    assert ldb.version == "2:2.6.2+samba4.17.12+dfsg-0+deb12u1"
    assert ldb.source_name == "samba"
    assert ldb.source_version == "2:4.17.12+dfsg-0+deb12u1"
    assert ldb.purl == (
        "pkg:deb/debian/libldb2@2:2.6.2%2Bsamba4.17.12%2Bdfsg-0%2Bdeb12u1?arch=amd64"
        "&distro=debian-12&upstream=samba%402:4.17.12%2Bdfsg-0%2Bdeb12u1"
    )
    assert debs["libssl3"].source_name == "openssl"
    assert debs["libssl3"].source_version is None
    assert debs["perl-base"].purl.endswith("&upstream=perl")
    assert ldb.layer_digest == "sha256:1"
    assert ldb.locations == ("var/lib/dpkg/status",)
    assert ldb.distro == catalog.distro


def test_dpkg_distroless_status_d() -> None:
    entry = b"Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n"
    catalog = catalog_of(
        {
            "etc/os-release": DEBIAN,
            "var/lib/dpkg/status.d/base": entry,
            "var/lib/dpkg/status.d/base.md5sums": b"d41d8cd98f00b204e9800998ecf8427e  etc/x\n",
        }
    )
    debs = by_name(catalog, "deb")
    assert list(debs) == ["base-files"]
    assert debs["base-files"].locations == ("var/lib/dpkg/status.d/base",)


def test_dpkg_deleted_in_upper_layer() -> None:
    catalog = catalog_of(
        {"var/lib/dpkg/status": STATUS},
        {"var/lib/dpkg/status": b"Package: only\nVersion: 1\nStatus: install ok installed\n"},
    )
    assert [p.name for p in catalog.packages] == ["only"]
    assert catalog.packages[0].layer_digest == "sha256:2"


def test_apk_origin_and_purl() -> None:
    installed = b"""C:Q1abc=
P:libssl3
V:3.3.2-r0
A:x86_64
o:openssl
L:Apache-2.0

P:busybox
V:1.36.1-r29
A:x86_64
o:busybox

P:musl
V:1.2.5-r0
A:x86_64
"""
    catalog = catalog_of({"etc/os-release": ALPINE, "lib/apk/db/installed": installed})
    apks = by_name(catalog, "apk")
    assert apks["libssl3"].source_name == "openssl"
    assert apks["libssl3"].purl == (
        "pkg:apk/alpine/libssl3@3.3.2-r0?arch=x86_64&distro=alpine-3.20.3&upstream=openssl"
    )
    assert (
        apks["busybox"].purl == "pkg:apk/alpine/busybox@1.36.1-r29?arch=x86_64&distro=alpine-3.20.3"
    )
    assert apks["musl"].source_name == "musl"


def test_python_dist_info_and_egg_info() -> None:
    catalog = catalog_of(
        {
            "usr/lib/python3/dist-packages/Requests-2.19.0.dist-info/METADATA": (
                b"Metadata-Version: 2.1\nName: Requests\nVersion: 2.19.0\n\nLong description\n"
            ),
            "usr/lib/python3/dist-packages/zope.interface-5.5.egg-info/PKG-INFO": (
                b"Metadata-Version: 1.2\nName: zope.interface\nVersion: 5.5.2\n"
            ),
            "usr/lib/python3.11/lib-dynload/Python-3.11.egg-info": b"Name: Python\nVersion: 3.11\n",
            "usr/lib/python3/dist-packages/six-1.16.0.egg-info": b"Name: six\nVersion: 1.16.0\n",
            "usr/lib/python3/dist-packages/broken-1.dist-info/METADATA": b"Name: broken\n",
        }
    )
    pythons = by_name(catalog, "pypi")
    assert sorted(pythons) == ["requests", "six", "zope-interface"]
    assert pythons["requests"].purl == "pkg:pypi/requests@2.19.0"
    assert any("without Name or Version" in reason for reason in catalog.skipped)


def test_npm_node_modules() -> None:
    catalog = catalog_of(
        {
            "app/node_modules/express/package.json": b'{"name":"express","version":"4.21.2"}',
            "app/node_modules/@babel/core/package.json": (
                b'{"name":"@babel/core","version":"7.26.0"}'
            ),
            "app/node_modules/a/node_modules/ms/package.json": b'{"name":"ms","version":"2.0.0"}',
            "app/node_modules/express/lib/package.json": b'{"name":"inner","version":"1.0.0"}',
            "app/package.json": b'{"name":"app","version":"1.0.0"}',
            "app/node_modules/noversion/package.json": b'{"name":"noversion"}',
            "app/node_modules/bad/package.json": b"{not json",
        }
    )
    npms = by_name(catalog, "npm")
    assert sorted(npms) == ["@babel/core", "express", "ms"]
    assert npms["@babel/core"].purl == "pkg:npm/%40babel/core@7.26.0"
    assert any("invalid package.json" in reason for reason in catalog.skipped)


MODINFO = (
    "path\texample.com/app/cmd/app\n"
    "mod\texample.com/app\t(devel)\t\n"
    "dep\tgolang.org/x/net\tv0.17.0\th1:abc=\n"
    "dep\tgithub.com/old/lib\tv1.0.0\th1:def=\n"
    "=>\tgithub.com/fork/lib\tv1.0.1\th1:ghi=\n"
    "build\t-ldflags=-X main.version=1.4.2\n"
    "build\tvcs.revision=0123456789abcdef0123\n"
    "build\tvcs.time=2024-01-02T03:04:05Z\n"
)


@pytest.mark.parametrize("builder", [go_binary, go_binary_pointers])
def test_go_buildinfo_read(builder) -> None:  # noqa: ANN001
    found = read_buildinfo(builder("go1.21.5 X:boringcrypto", MODINFO))
    assert found is not None
    version, modinfo = found
    assert version == "go1.21.5 X:boringcrypto"
    assert modinfo == MODINFO


def test_go_buildinfo_without_section_header() -> None:
    found = read_buildinfo(go_binary("go1.22.0", MODINFO, with_section=False))
    assert found is not None
    assert found[0] == "go1.22.0"


def test_go_cataloger_modules() -> None:
    catalog = catalog_of(
        [
            Entry("usr/local/bin/app", go_binary("go1.21.5 X:boringcrypto", MODINFO), mode=0o755),
            Entry("usr/local/bin/notgo", b"\x7fELF" + bytes(200), mode=0o755),
        ]
    )
    gos = by_name(catalog, "golang")
    assert sorted(gos) == ["example.com/app", "github.com/fork/lib", "golang.org/x/net", "stdlib"]
    assert gos["example.com/app"].version == "v1.4.2"
    assert gos["github.com/fork/lib"].version == "v1.0.1"
    assert gos["stdlib"].version == "go1.21.5"
    assert gos["stdlib"].purl == "pkg:golang/stdlib@1.21.5"
    assert gos["golang.org/x/net"].purl == "pkg:golang/golang.org/x/net@v0.17.0"
    assert gos["golang.org/x/net"].locations == ("usr/local/bin/app",)


def test_go_main_version_from_vcs() -> None:
    modinfo = MODINFO.replace("build\t-ldflags=-X main.version=1.4.2\n", "")
    catalog = catalog_of([Entry("app", go_binary("go1.22.0", modinfo), mode=0o755)])
    assert (
        by_name(catalog, "golang")["example.com/app"].version
        == "v0.0.0-20240102030405-0123456789ab"
    )


def test_go_real_binary_on_this_machine() -> None:
    path = Path("/usr/bin/docker-registry")
    if not path.exists():
        pytest.skip("docker-registry is not installed")
    found = read_buildinfo(path.read_bytes())
    assert found is not None
    assert found[0].startswith("go1.")
    assert "path\t" in found[1]


def _jar(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return raw.getvalue()


POM = b"groupId=com.google.guava\nartifactId=guava\nversion=33.0.0-jre\n"
SHADED = b"#generated\ngroupId=org.shaded\nartifactId=inner\nversion=2.1\n"
MANIFEST = (
    b"Manifest-Version: 1.0\nImplementation-Title: Guava\nImplementation-Version: 33.0.0-jre\n"
)


def test_java_pom_properties_and_shaded() -> None:
    jar = _jar(
        {
            "META-INF/MANIFEST.MF": MANIFEST,
            "META-INF/maven/com.google.guava/guava/pom.properties": POM,
            "META-INF/maven/org.shaded/inner/pom.properties": SHADED,
        }
    )
    catalog = catalog_of([Entry("opt/app/guava-33.0.0-jre.jar", jar)])
    mavens = by_name(catalog, "maven")
    assert sorted(mavens) == ["guava", "inner"]
    assert mavens["guava"].purl == "pkg:maven/com.google.guava/guava@33.0.0-jre"
    assert mavens["inner"].version == "2.1"


def test_java_manifest_only_and_nested() -> None:
    inner = _jar({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\nImplementation-Version: 9.9\n"})
    outer = _jar(
        {
            "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\nImplementation-Title: app\n",
            "BOOT-INF/lib/helper-1.2.jar": inner,
        }
    )
    catalog = catalog_of([Entry("app.war", outer)])
    found = {(p.name, p.version, p.locations[0]) for p in catalog.packages}
    assert found == {
        ("app", "", "app.war"),
        ("helper", "1.2", "app.war:BOOT-INF/lib/helper-1.2.jar"),
    }


def test_java_nesting_depth_cap() -> None:
    archive = _jar({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n"})
    for level in range(6):
        archive = _jar(
            {"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", f"l{level}-1.0.jar": archive}
        )
    found, skipped = read_java_archive(archive, "top-1.0.jar", Limits(max_archive_depth=3))
    assert len(found) == 4
    assert any("deeper than 3" in reason for reason in skipped)


def test_java_zip_bomb_member_is_skipped() -> None:
    bomb = _jar(
        {"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", "big-1.0.jar": bytes(5 * 1024 * 1024)}
    )
    found, skipped = read_java_archive(
        bomb, "x-1.0.jar", Limits(max_archive_member_bytes=1024 * 1024)
    )
    assert [f["artifact"] for f in found] == ["x"]
    assert any("larger than" in reason for reason in skipped)


def test_java_not_a_zip() -> None:
    catalog = catalog_of([Entry("lib/broken-1.0.jar", b"PK\x03\x04 not really")])
    assert catalog.packages == ()
    assert any("not a readable zip" in reason for reason in catalog.skipped)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("guava-33.0.0-jre.jar", ("guava", "33.0.0-jre")),
        ("commons-lang3-3.14.0.jar", ("commons-lang3", "3.14.0")),
        ("app.jar", ("app", "")),
    ],
)
def test_java_split_filename(filename: str, expected: tuple[str, str]) -> None:
    assert split_filename(filename) == expected


def _header_blob(tags: list[tuple[int, int, bytes]]) -> bytes:
    index = b""
    store = b""
    for tag, kind, value in tags:
        if kind == 4:
            store += b"\x00" * (-len(store) % 4)
        index += struct.pack(">IIiI", tag, kind, len(store), 1)
        store += value
    return struct.pack(">II", len(tags), len(store)) + index + store


def _rpmdb(headers: list[bytes]) -> bytes:
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)"
    )
    connection.executemany("INSERT INTO Packages (blob) VALUES (?)", [(h,) for h in headers])
    connection.commit()
    data = connection.serialize()
    connection.close()
    return bytes(data)


def _rpm(name: str, version: str, release: str, epoch: int | None = None) -> bytes:
    tags = [
        (1000, 6, name.encode() + b"\x00"),
        (1001, 6, version.encode() + b"\x00"),
        (1002, 6, release.encode() + b"\x00"),
        (1022, 6, b"x86_64\x00"),
        (1044, 6, f"{name}-{version}-{release}.src.rpm".encode() + b"\x00"),
    ]
    if epoch is not None:
        tags.append((1003, 4, struct.pack(">i", epoch)))
    return _header_blob(tags)


def test_rpm_sqlite_database() -> None:
    rpmdb = _rpmdb(
        [
            _rpm("openssl-libs", "3.0.7", "27.el9", epoch=1),
            _rpm("bash", "5.1.8", "9.el9"),
            _rpm("gpg-pubkey", "fd431d51", "4ae0493b"),
        ]
    )
    catalog = catalog_of(
        {
            "etc/os-release": b'ID="rhel"\nVERSION_ID="9.4"\n',
            "usr/lib/sysimage/rpm/rpmdb.sqlite": rpmdb,
        }
    )
    rpms = by_name(catalog, "rpm")
    assert sorted(rpms) == ["bash", "openssl-libs"]
    assert rpms["openssl-libs"].version == "1:3.0.7-27.el9"
    assert rpms["openssl-libs"].source_name == "openssl-libs"
    assert rpms["openssl-libs"].purl == (
        "pkg:rpm/redhat/openssl-libs@3.0.7-27.el9?arch=x86_64&distro=rhel-9.4&epoch=1"
        "&upstream=openssl-libs-3.0.7-27.el9.src.rpm"
    )
    assert rpms["bash"].version == "5.1.8-9.el9"


def test_rpm_berkeley_db_reported_not_cataloged() -> None:
    catalog = catalog_of({"var/lib/rpm/Packages": b"\x00" * 64})
    assert catalog.packages == ()
    assert catalog.skipped == (
        "var/lib/rpm/Packages: Berkeley DB rpm database not cataloged (no reader)",
    )


def test_rpm_header_blob_bounds() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_header_blob(struct.pack(">II", 0x7FFFFFFF, 0))
    with pytest.raises(ValueError, match="truncated"):
        parse_header_blob(struct.pack(">II", 2, 100) + bytes(10))


def test_rpm_corrupt_sqlite_is_skipped() -> None:
    catalog = catalog_of({"var/lib/rpm/rpmdb.sqlite": b"SQLite format 3\x00" + bytes(100)})
    assert catalog.packages == ()
    assert any("invalid rpm database" in reason for reason in catalog.skipped)


def test_packages_sorted_and_serializable() -> None:
    catalog = catalog_of({"etc/os-release": DEBIAN, "var/lib/dpkg/status": STATUS})
    keys = [(p.type, p.name) for p in catalog.packages]
    assert keys == sorted(keys)
    assert json.dumps([p.purl for p in catalog.packages])
