"""SBOM writing (SPDX 2.3, CycloneDX 1.6) and reading (SPDX 2.2/2.3, CycloneDX 1.4-1.7)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from regward.sbom import read_sbom, write_cyclonedx, write_spdx
from regward.sbom.interface import Catalog, Limits, SbomFormatError
from regward.sbom.model import Distro, Package
from tests.conftest import asset

DEBIAN = Distro("debian", "12", "Debian GNU/Linux 12 (bookworm)")
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CATALOG = Catalog(
    packages=(
        Package(
            name="libldb2",
            version="2:2.6.2+samba4.17.12+dfsg-0+deb12u1",
            type="deb",
            purl="pkg:deb/debian/libldb2@2:2.6.2%2Bsamba4.17.12%2Bdfsg-0%2Bdeb12u1?arch=amd64"
            "&distro=debian-12&upstream=samba%402:4.17.12%2Bdfsg-0%2Bdeb12u1",
            source_name="samba",
            source_version="2:4.17.12+dfsg-0+deb12u1",
            layer_digest="sha256:" + "a" * 64,
            locations=("var/lib/dpkg/status",),
            distro=DEBIAN,
        ),
        Package(
            name="@babel/core",
            version="7.26.0",
            type="npm",
            purl="pkg:npm/%40babel/core@7.26.0",
            layer_digest="sha256:" + "b" * 64,
            locations=("app/node_modules/@babel/core/package.json",),
        ),
        Package(
            name="guava",
            version="33.0.0-jre",
            type="maven",
            purl="pkg:maven/com.google.guava/guava@33.0.0-jre",
            locations=("opt/app/guava-33.0.0-jre.jar",),
        ),
        Package(
            name="golang.org/x/net",
            version="v0.17.0",
            type="golang",
            purl="pkg:golang/golang.org/x/net@v0.17.0",
        ),
    ),
    distro=DEBIAN,
)


def identity(catalog: Catalog) -> list[tuple[str, str, str, str]]:
    return sorted((p.type, p.name, p.version, p.purl) for p in catalog.packages)


def test_spdx_document_shape() -> None:
    document = json.loads(write_spdx(CATALOG, "registry.example/app:v1", created=CREATED))
    assert document["spdxVersion"] == "SPDX-2.3"
    assert document["creationInfo"]["created"] == "2026-01-02T03:04:05Z"
    root = document["packages"][0]
    assert root["primaryPackagePurpose"] == "CONTAINER"
    assert len(document["packages"]) == 5
    refs = document["packages"][1]["externalRefs"]
    assert refs == [
        {
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": CATALOG.packages[0].purl,
        }
    ]
    contains = [r for r in document["relationships"] if r["relationshipType"] == "CONTAINS"]
    assert len(contains) == 4


def test_spdx_round_trip() -> None:
    read = read_sbom(write_spdx(CATALOG, "app", created=CREATED))
    assert identity(read) == identity(CATALOG)
    ldb = next(p for p in read.packages if p.name == "libldb2")
    assert ldb.source_name == "samba"
    assert ldb.source_version == "2:4.17.12+dfsg-0+deb12u1"
    assert read.distro == Distro("debian", "12")


def test_spdx_output_is_reproducible() -> None:
    assert write_spdx(CATALOG, "app", created=CREATED) == write_spdx(
        CATALOG, "app", created=CREATED
    )


def test_cyclonedx_document_shape() -> None:
    document = json.loads(write_cyclonedx(CATALOG, "registry.example/app:v1", created=CREATED))
    assert document["bomFormat"] == "CycloneDX"
    assert document["specVersion"] == "1.6"
    assert document["metadata"]["component"]["type"] == "container"
    guava = next(c for c in document["components"] if c["name"] == "guava")
    assert guava["group"] == "com.google.guava"
    assert guava["purl"] == "pkg:maven/com.google.guava/guava@33.0.0-jre"


def test_cyclonedx_round_trip_keeps_layers() -> None:
    read = read_sbom(write_cyclonedx(CATALOG, "app", created=CREATED))
    assert identity(read) == identity(CATALOG)
    babel = next(p for p in read.packages if p.name == "@babel/core")
    assert babel.layer_digest == "sha256:" + "b" * 64
    assert babel.locations == ("app/node_modules/@babel/core/package.json",)


@pytest.mark.parametrize("fixture", ["sbom/syft-1.18.1.spdx.json", "sbom/syft-1.18.1.cdx.json"])
def test_reads_syft_documents(fixture: str) -> None:
    catalog = read_sbom(asset(fixture).read_bytes())
    names = {(p.type, p.name, p.version) for p in catalog.packages}
    assert ("pypi", "requests", "2.19.0") in names
    assert ("npm", "express", "4.21.2") in names
    assert sum(1 for p in catalog.packages if p.type == "deb") == 7
    perl = next(p for p in catalog.packages if p.name == "perl-base")
    assert perl.source_name == "perl"
    assert catalog.distro is not None
    assert catalog.distro.id == "debian"


@pytest.mark.parametrize("fixture", ["sbom/trivy-0.59.1.spdx.json", "sbom/trivy-0.59.1.cdx.json"])
def test_reads_trivy_documents(fixture: str) -> None:
    # trivy found no OS in this image (it has no etc/debian_version), so its dpkg packages carry
    # no purl and are listed as skipped.
    catalog = read_sbom(asset(fixture).read_bytes())
    names = {(p.type, p.name, p.version) for p in catalog.packages}
    assert names == {("pypi", "requests", "2.19.0"), ("npm", "express", "4.21.2")}
    assert sum(1 for reason in catalog.skipped if reason.endswith("(perl-base): no purl")) == 1


def test_spdx_2_2_underscore_category() -> None:
    document = {
        "spdxVersion": "SPDX-2.2",
        "packages": [
            {
                "name": "lodash",
                "versionInfo": "4.17.21",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE_MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": "pkg:npm/lodash@4.17.21",
                    }
                ],
            },
            {"name": "no-purl", "versionInfo": "1"},
        ],
    }
    catalog = read_sbom(json.dumps(document).encode())
    assert [(p.name, p.version) for p in catalog.packages] == [("lodash", "4.17.21")]
    assert catalog.skipped == ("SPDX packages[1] (no-purl): no purl",)


@pytest.mark.parametrize("version", ["1.4", "1.5", "1.7"])
def test_cyclonedx_versions_and_nesting(version: str) -> None:
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": version,
        "components": [
            {
                "name": "outer",
                "version": "1.0",
                "purl": "pkg:maven/org.example/outer@1.0",
                "components": [
                    {"name": "inner", "version": "2.0", "purl": "pkg:maven/org.example/inner@2.0"}
                ],
            },
            {"name": "image", "purl": "pkg:oci/app@sha256%3Aabc"},
        ],
    }
    catalog = read_sbom(json.dumps(document).encode())
    assert [p.name for p in catalog.packages] == ["outer", "inner"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'{"spdxVersion": "SPDX-2.1", "packages": []}', "unsupported SPDX version"),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.3"}', "unsupported CycloneDX"),
        (b'{"hello": 1}', "not an SBOM"),
        (b'{"spdxVersion": "SPDX-2.3", "packages": {}}', "packages is not a list"),
        (
            b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [1]}',
            "is not an object",
        ),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
    ],
)
def test_malformed_documents(data: bytes, message: str) -> None:
    with pytest.raises(SbomFormatError, match=message):
        read_sbom(data)


def test_size_and_count_limits() -> None:
    document = write_spdx(CATALOG, "app", created=CREATED)
    with pytest.raises(SbomFormatError, match="max_sbom_bytes"):
        read_sbom(document, limits=Limits(max_sbom_bytes=100))
    with pytest.raises(SbomFormatError, match="max_sbom_packages"):
        read_sbom(document, limits=Limits(max_sbom_packages=2))


def test_deeply_nested_cyclonedx_is_rejected() -> None:
    component: dict[str, object] = {"name": "leaf", "version": "1", "purl": "pkg:npm/leaf@1"}
    for _ in range(100):
        component = {"name": "n", "version": "1", "purl": "pkg:npm/n@1", "components": [component]}
    document = {"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [component]}
    with pytest.raises(SbomFormatError, match="nest deeper"):
        read_sbom(json.dumps(document).encode())
