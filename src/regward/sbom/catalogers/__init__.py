"""The catalogers regward runs on every image, one module per ecosystem."""

from __future__ import annotations

from regward.sbom.catalogers.apk import ApkCataloger
from regward.sbom.catalogers.dpkg import DpkgCataloger
from regward.sbom.catalogers.golang import GoBinaryCataloger
from regward.sbom.catalogers.java import JavaArchiveCataloger
from regward.sbom.catalogers.npm import NpmCataloger
from regward.sbom.catalogers.python import PythonCataloger
from regward.sbom.catalogers.rpm import RpmCataloger
from regward.sbom.interface import DEFAULT_LIMITS, Cataloger, Limits

__all__ = [
    "ApkCataloger",
    "DpkgCataloger",
    "GoBinaryCataloger",
    "JavaArchiveCataloger",
    "NpmCataloger",
    "PythonCataloger",
    "RpmCataloger",
    "default_catalogers",
]


def default_catalogers(limits: Limits = DEFAULT_LIMITS) -> tuple[Cataloger, ...]:
    """Return one instance of every cataloger, in a fixed order."""
    return (
        DpkgCataloger(),
        ApkCataloger(),
        RpmCataloger(),
        PythonCataloger(),
        NpmCataloger(),
        GoBinaryCataloger(),
        JavaArchiveCataloger(limits),
    )
