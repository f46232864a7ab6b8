"""Cataloging real image formats: a registry (docker-registry), OCI layouts, and docker-archive
tars written by skopeo and by hand."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regward.oci.client import RegistryClient
from regward.sbom import catalog_docker_archive, catalog_image, catalog_oci_layout, catalog_target
from regward.sbom.interface import ImageSourceError, LayerError
from tests.support.layers import (
    gzip_layer,
    make_tar,
    push_layers,
    sha256,
    whiteout,
    write_docker_archive,
    write_oci_layout,
)
from tests.support.registry import RunningRegistry

OS_RELEASE = b"ID=debian\nVERSION_ID=12\n"
STATUS_OLD = (
    b"Package: curl\nVersion: 7.88.1-10\nStatus: install ok installed\nArchitecture: amd64\n"
)
STATUS_NEW = (
    b"Package: curl\nVersion: 7.88.1-10+deb12u8\n"
    b"Status: install ok installed\nArchitecture: amd64\n"
)
METADATA = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.19.0\n"
SITE = "usr/lib/python3/dist-packages"


def three_layers() -> list[bytes]:
    """Layer 1: os-release, dpkg and a wheel; layer 2: the wheel deleted; layer 3: dpkg updated."""
    return [
        gzip_layer(
            make_tar(
                {
                    "etc/os-release": OS_RELEASE,
                    "var/lib/dpkg/status": STATUS_OLD,
                    f"{SITE}/requests-2.19.0.dist-info/METADATA": METADATA,
                }
            )
        ),
        make_tar([whiteout(f"{SITE}/requests-2.19.0.dist-info")]),
        gzip_layer(make_tar({"var/lib/dpkg/status": STATUS_NEW})),
    ]


def summary(catalog) -> list[tuple[str, str, str]]:  # noqa: ANN001
    return [(p.type, p.name, p.version) for p in catalog.packages]


@pytest.mark.registry
async def test_registry_image_with_whiteouts(registry: RunningRegistry) -> None:
    layers = three_layers()
    digest = push_layers(registry.url, "team/app", "v1", layers)
    async with RegistryClient.for_registry(registry.host) as client:
        catalog = await catalog_image(client, "team/app", digest)
    assert summary(catalog) == [("deb", "curl", "7.88.1-10+deb12u8")]
    assert catalog.packages[0].layer_digest == sha256(layers[2])
    assert catalog.distro is not None
    assert catalog.distro.version_id == "12"


@pytest.mark.registry
async def test_registry_tampered_layer_is_rejected(registry: RunningRegistry) -> None:
    layers = three_layers()
    digest = push_layers(registry.url, "team/app", "v1", layers)
    hexdigest = sha256(layers[2]).split(":")[1]
    data = registry.root / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    assert data.exists()
    tampered = gzip_layer(make_tar({"var/lib/dpkg/status": STATUS_OLD}))
    data.write_bytes(tampered + bytes(len(layers[2]) - len(tampered)))
    async with RegistryClient.for_registry(registry.host) as client:
        with pytest.raises(LayerError, match="digest mismatch"):
            await catalog_image(client, "team/app", digest)


def test_oci_layout_by_tag(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "layout", three_layers(), "v1")
    catalog = catalog_oci_layout(tmp_path / "layout", "v1")
    assert summary(catalog) == [("deb", "curl", "7.88.1-10+deb12u8")]
    assert summary(catalog_target(f"oci:{tmp_path / 'layout'}:v1")) == summary(catalog)
    assert summary(catalog_target(f"oci:{tmp_path / 'layout'}")) == summary(catalog)


def test_oci_layout_unknown_tag(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "layout", three_layers(), "v1")
    with pytest.raises(ImageSourceError, match="no image tagged 'v2'"):
        catalog_oci_layout(tmp_path / "layout", "v2")


def test_oci_layout_tampered_layer(tmp_path: Path) -> None:
    layers = three_layers()
    write_oci_layout(tmp_path / "layout", layers, "v1")
    blob = tmp_path / "layout/blobs/sha256" / sha256(layers[0]).split(":")[1]
    raw = bytearray(blob.read_bytes())
    raw[-12] ^= 0xFF
    blob.write_bytes(bytes(raw))
    with pytest.raises(LayerError):
        catalog_oci_layout(tmp_path / "layout", "v1")


def test_oci_layout_digest_path_traversal(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "layout", three_layers(), "v1")
    index = json.loads((tmp_path / "layout/index.json").read_text())
    index["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
    (tmp_path / "layout/index.json").write_text(json.dumps(index))
    with pytest.raises(ImageSourceError, match="invalid digest"):
        catalog_oci_layout(tmp_path / "layout", "v1")


def test_not_an_oci_layout(tmp_path: Path) -> None:
    with pytest.raises(ImageSourceError, match="cannot read OCI layout marker"):
        catalog_oci_layout(tmp_path)


@pytest.mark.parametrize("legacy", [True, False])
def test_docker_archive_formats(tmp_path: Path, legacy: bool) -> None:
    archive = tmp_path / "image.tar"
    write_docker_archive(archive, three_layers(), legacy=legacy)
    catalog = catalog_docker_archive(archive)
    assert summary(catalog) == [("deb", "curl", "7.88.1-10+deb12u8")]


def test_docker_archive_tampered_legacy_layer(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    write_docker_archive(archive, [make_tar({"var/lib/dpkg/status": STATUS_OLD})])
    raw = bytearray(archive.read_bytes())
    at = raw.find(b"7.88.1-10")
    raw[at] = ord("9")
    archive.write_bytes(bytes(raw))
    with pytest.raises(LayerError, match="digest mismatch"):
        catalog_docker_archive(archive)


def test_docker_archive_written_by_skopeo(tmp_path: Path) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo is not installed")
    write_oci_layout(tmp_path / "layout", three_layers(), "v1")
    archive = tmp_path / "skopeo.tar"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--quiet",
            f"oci:{tmp_path / 'layout'}:v1",
            f"docker-archive:{archive}:app:v1",
        ],
        check=True,
        timeout=120,
    )
    catalog = catalog_docker_archive(archive)
    assert summary(catalog) == [("deb", "curl", "7.88.1-10+deb12u8")]


def test_docker_archive_not_a_tar(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(b"nope" * 300)
    with pytest.raises(ImageSourceError, match="not a readable tar"):
        catalog_docker_archive(archive)


def test_target_syntax_error() -> None:
    with pytest.raises(ImageSourceError, match="expected oci:DIR"):
        catalog_target("registry.example/app:v1")


def test_main_prints_count(tmp_path: Path) -> None:
    write_oci_layout(tmp_path / "layout", three_layers(), "v1")
    done = subprocess.run(
        [sys.executable, "-m", "regward.sbom", f"oci:{tmp_path / 'layout'}:v1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1\n"


@pytest.mark.registry
async def test_registry_index_picks_linux_amd64(registry: RunningRegistry) -> None:
    from tests.support.images import push_image, push_index

    amd64 = push_image(registry.url, "team/multi", None, {"var/lib/dpkg/status": STATUS_NEW})
    arm64 = push_image(
        registry.url, "team/multi", None, {"var/lib/dpkg/status": STATUS_OLD}, architecture="arm64"
    )
    index_digest, _ = push_index(registry.url, "team/multi", "v1", [amd64, arm64])
    async with RegistryClient.for_registry(registry.host) as client:
        catalog = await catalog_image(client, "team/multi", index_digest)
    assert summary(catalog) == [("deb", "curl", "7.88.1-10+deb12u8")]
