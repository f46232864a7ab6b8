"""Catalog an image: read its layers into a `LayerFileSystem`, detect the distro, run the
catalogers.

These functions block and use the CPU; call them in a thread from async code.
`regward.sbom.registry.catalog_image` reads from a registry and does that itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

from regward.sbom.catalogers import default_catalogers
from regward.sbom.catalogers.os_release import REQUEST as OS_RELEASE_REQUEST
from regward.sbom.catalogers.os_release import detect_distro
from regward.sbom.filesystem import Budget, FileSelector, merge_layers
from regward.sbom.interface import (
    DEFAULT_LIMITS,
    Catalog,
    CatalogContext,
    Cataloger,
    FileSystem,
    ImageSourceError,
    Limits,
)
from regward.sbom.model import Package
from regward.sbom.sources import (
    LayerBlob,
    docker_archive_layers,
    index_layer,
    oci_layout_layers,
)

logger = logging.getLogger(__name__)


def make_selector(catalogers: Sequence[Cataloger]) -> FileSelector:
    """Return the selector of every file the catalogers and distro detection read."""
    requests = [OS_RELEASE_REQUEST]
    for cataloger in catalogers:
        requests.extend(cataloger.requests())
    return FileSelector(requests)


def _sort_key(package: Package) -> tuple[str, str, str, str]:
    return (
        package.type,
        package.name,
        package.version,
        package.locations[0] if package.locations else "",
    )


def catalog_filesystem(
    fs: FileSystem,
    *,
    catalogers: Sequence[Cataloger] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Catalog:
    """Run the catalogers over a merged layer filesystem and return what they found."""
    chosen = catalogers if catalogers is not None else default_catalogers(limits)
    distro = detect_distro(fs)
    context = CatalogContext(distro=distro, limits=limits)
    packages: list[Package] = []
    skipped: list[str] = list(fs.skipped)
    for cataloger in chosen:
        result = cataloger.catalog(fs, context)
        logger.debug("cataloger %s found %d packages", cataloger.name, len(result.packages))
        packages.extend(result.packages)
        skipped.extend(result.skipped)
    packages.sort(key=_sort_key)
    return Catalog(packages=tuple(packages), distro=distro, skipped=tuple(skipped))


def catalog_layers(
    layers: Iterable[LayerBlob],
    *,
    catalogers: Sequence[Cataloger] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Catalog:
    """Index `layers` (lowest first), merge them and catalog the result.

    Raises:
        LayerError: a layer is unreadable, corrupt, over a limit, or does not match its digest.
    """
    chosen = catalogers if catalogers is not None else default_catalogers(limits)
    selector = make_selector(chosen)
    budget = Budget(limits)
    indexes = [index_layer(blob, selector, budget) for blob in layers]
    fs = merge_layers(indexes, limits)
    return catalog_filesystem(fs, catalogers=chosen, limits=limits)


def catalog_oci_layout(
    path: str | os.PathLike[str],
    tag: str | None = None,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> Catalog:
    """Catalog the image `tag` (or the only image) of an OCI layout directory.

    Raises:
        ImageSourceError: the directory is not an OCI layout or the image cannot be chosen.
        LayerError: a layer is unreadable, corrupt, over a limit, or does not match its digest.
    """
    return catalog_layers(oci_layout_layers(path, tag), limits=limits)


def catalog_docker_archive(
    path: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS
) -> Catalog:
    """Catalog the image in a `docker save` tar file.

    Raises:
        ImageSourceError: the file is not a docker-archive with exactly one image.
        LayerError: a layer is unreadable, corrupt, over a limit, or does not match its digest.
    """
    return catalog_layers(docker_archive_layers(path), limits=limits)


def catalog_target(target: str, *, limits: Limits = DEFAULT_LIMITS) -> Catalog:
    """Catalog a local image named as `oci:DIR[:TAG]` or `docker-archive:FILE`.

    Raises:
        ImageSourceError: the target has another form, or its image cannot be read.
        LayerError: a layer is unreadable, corrupt, over a limit, or does not match its digest.
    """
    scheme, separator, rest = target.partition(":")
    if separator and scheme == "oci":
        directory, tag = rest, None
        if not os.path.isdir(rest) and ":" in rest:
            directory, _, tag = rest.rpartition(":")
        return catalog_oci_layout(directory, tag, limits=limits)
    if separator and scheme == "docker-archive":
        return catalog_docker_archive(rest, limits=limits)
    raise ImageSourceError(
        f"invalid target {target!r}: expected oci:DIR[:TAG] or docker-archive:FILE"
    )
