"""Value types shared by the catalogers, the SBOM readers and writers, and the vulnerability matcher."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Distro:
    """The operating system an image is built on, from `etc/os-release`."""

    id: str
    """`ID` from os-release, lower case: `debian`, `alpine`, `ubuntu`, `rhel`, `almalinux`, `wolfi`."""
    version_id: str
    """`VERSION_ID` from os-release: `12`, `3.20.3`, `22.04`."""
    pretty_name: str = ""


@dataclass(frozen=True)
class Package:
    """One package found in an image or read from an SBOM."""

    name: str
    """The package name as its ecosystem spells it (binary package name for deb/apk/rpm)."""
    version: str
    """The installed version, exactly as the package database records it."""
    type: str
    """The purl type: `deb`, `apk`, `rpm`, `pypi`, `npm`, `golang`, `maven`, `cargo`, `gem`, …"""
    purl: str
    """The Package URL, with `distro=` and `upstream=` qualifiers for distro packages."""
    source_name: str | None = None
    """Source (deb `Source:`) or origin (apk `o:`) package name, when it differs or is known."""
    source_version: str | None = None
    """Version of the source package, when the database records one that differs."""
    layer_digest: str | None = None
    """Digest of the layer whose files recorded this package."""
    locations: tuple[str, ...] = field(default=())
    """Paths inside the image filesystem that recorded this package."""
    distro: Distro | None = None
    """The distro of the image, for distro package types."""
