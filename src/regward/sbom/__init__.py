"""regward.sbom: catalog the packages in an image's layers, and read and write SBOMs.

Example, for a local OCI layout directory:

    from regward.sbom import catalog_oci_layout, write_spdx
    catalog = catalog_oci_layout("/tmp/layout", "v1")
    document = write_spdx(catalog, "app:v1")

`catalog_image` and the SBOM readers and writers are loaded on first use: they import aiohttp and
cyclonedx-python-lib, which a local cataloging run does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regward.sbom.catalog import (
    catalog_docker_archive,
    catalog_filesystem,
    catalog_layers,
    catalog_oci_layout,
    catalog_target,
)
from regward.sbom.filesystem import LayerFileSystem, merge_layers, read_layer
from regward.sbom.interface import (
    DEFAULT_LIMITS,
    Catalog,
    CatalogContext,
    Cataloger,
    CatalogerResult,
    FileRequest,
    ImageSourceError,
    IndexedFile,
    LayerError,
    LimitExceededError,
    Limits,
    SbomError,
    SbomFormatError,
)
from regward.sbom.model import Distro, Package

__all__ = [
    "DEFAULT_LIMITS",
    "Catalog",
    "CatalogContext",
    "Cataloger",
    "CatalogerResult",
    "Distro",
    "FileRequest",
    "ImageSourceError",
    "IndexedFile",
    "LayerError",
    "LayerFileSystem",
    "LimitExceededError",
    "Limits",
    "Package",
    "SbomError",
    "SbomFormatError",
    "catalog_docker_archive",
    "catalog_filesystem",
    "catalog_image",
    "catalog_layers",
    "catalog_oci_layout",
    "catalog_target",
    "merge_layers",
    "read_layer",
    "read_sbom",
    "write_cyclonedx",
    "write_spdx",
]

if TYPE_CHECKING:
    from regward.sbom.formats import read_sbom, write_cyclonedx, write_spdx
    from regward.sbom.registry import catalog_image

_LAZY = {
    "catalog_image": "regward.sbom.registry",
    "read_sbom": "regward.sbom.formats",
    "write_cyclonedx": "regward.sbom.formats",
    "write_spdx": "regward.sbom.formats",
}


def __getattr__(name: str) -> Any:
    """Import `catalog_image` and the SBOM format functions when first used."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'regward.sbom' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
