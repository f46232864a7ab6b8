"""Catalog what `regward scan` and `regward sbom` are pointed at.

A target is a registry reference (`registry.example/team/app:v1`), an OCI layout directory
(`oci:DIR[:TAG]`), a `docker save` archive (`docker-archive:FILE`) or an SBOM document
(`sbom:FILE`, SPDX or CycloneDX JSON).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from regward.oci.client import RegistryClient
from regward.oci.reference import Reference, parse_reference
from regward.sbom import DEFAULT_LIMITS, Catalog, Limits, catalog_image, catalog_target, read_sbom
from regward.scanning.errors import TargetError


class TargetKind(StrEnum):
    """The kinds of scan target."""

    REGISTRY = "registry"
    OCI = "oci"
    DOCKER_ARCHIVE = "docker-archive"
    SBOM = "sbom"


@dataclass(frozen=True)
class Target:
    """A parsed scan target."""

    kind: TargetKind
    text: str
    """The target as given on the command line."""

    reference: Reference | None = None
    """The image reference, for a registry target."""

    path: Path | None = None
    """The file or directory, for local targets."""


@dataclass(frozen=True)
class CatalogedTarget:
    """A target and the packages found in it."""

    target: Target
    catalog: Catalog
    digest: str | None = None
    """The manifest digest a registry reference resolved to."""


def parse_target(text: str) -> Target:
    """Parse a scan target.

    Raises:
        TargetError: the text is empty or a prefixed target lacks its path.
        InvalidReferenceError: an unprefixed target is not a valid image reference.
    """
    if not text:
        raise TargetError(
            "missing target: expected an image reference, oci:DIR[:TAG], docker-archive:FILE "
            "or sbom:FILE"
        )
    for kind in (TargetKind.OCI, TargetKind.DOCKER_ARCHIVE, TargetKind.SBOM):
        prefix = f"{kind}:"
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            if not rest:
                raise TargetError(f"invalid target {text!r}: missing the path after {prefix!r}")
            return Target(kind, text, path=Path(rest))
    return Target(TargetKind.REGISTRY, text, reference=parse_reference(text))


def catalog_any(
    target: Target, *, insecure: bool = False, limits: Limits = DEFAULT_LIMITS
) -> CatalogedTarget:
    """Catalog a target; blocks, and runs its own event loop for a registry target.

    Raises:
        TargetError: an SBOM file cannot be read.
        SbomError: the image or SBOM cannot be read or cataloged.
        OCIError: the registry failed to serve the manifest or a layer.
    """
    if target.kind is TargetKind.REGISTRY:
        assert target.reference is not None
        catalog, digest = asyncio.run(_catalog_registry(target.reference, insecure, limits))
        return CatalogedTarget(target, catalog, digest)
    if target.kind is TargetKind.SBOM:
        assert target.path is not None
        return CatalogedTarget(target, _read_sbom_file(target.path, limits))
    return CatalogedTarget(target, catalog_target(target.text, limits=limits))


def _read_sbom_file(path: Path, limits: Limits) -> Catalog:
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.max_sbom_bytes + 1)
    except OSError as exc:
        raise TargetError(f"cannot read SBOM file {path}: {exc.strerror or exc}") from exc
    return read_sbom(data, limits=limits)


async def _catalog_registry(
    reference: Reference, insecure: bool, limits: Limits
) -> tuple[Catalog, str]:
    async with RegistryClient.for_registry(reference.registry, insecure=insecure) as client:
        fetched = await client.get_manifest(reference.repository, reference.reference)
        catalog = await catalog_image(client, reference.repository, fetched.digest, limits=limits)
    return catalog, fetched.digest
