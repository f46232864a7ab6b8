"""SBOM documents: write SPDX 2.3 JSON and CycloneDX 1.6 JSON, read SPDX 2.2/2.3 JSON and CycloneDX
1.4–1.7 JSON back into packages.

CycloneDX is written with cyclonedx-python-lib. SPDX is written as plain JSON because the SPDX
library (spdx-tools) is not a dependency and the document needs a dozen fields. Reading walks the
parsed JSON directly: only name, version and purl of each package are needed, so fields the reader
does not use cannot make a read fail.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from packageurl import PackageURL

from regward import __version__
from regward.sbom.interface import DEFAULT_LIMITS, Catalog, Limits, SbomFormatError
from regward.sbom.model import Distro, Package

logger = logging.getLogger(__name__)

SPDX_VERSIONS = frozenset({"SPDX-2.2", "SPDX-2.3"})
"""SPDX versions `read_sbom` accepts."""
CYCLONEDX_VERSIONS = frozenset({"1.4", "1.5", "1.6", "1.7"})
"""CycloneDX spec versions `read_sbom` accepts."""
PROPERTY_LAYER = "regward:layer_digest"
"""CycloneDX property naming the layer a package came from."""
PROPERTY_LOCATION = "regward:location"
"""CycloneDX property naming a file that recorded the package (one property per file)."""
_PURL_REFERENCE_CATEGORIES = {"PACKAGE-MANAGER", "PACKAGE_MANAGER"}
_SKIPPED_PURL_TYPES = {"oci", "docker"}
_MAX_COMPONENT_DEPTH = 64
_DISTRO_TYPES = {"deb", "apk", "rpm"}


def _timestamp(created: datetime | None) -> str:
    moment = created if created is not None else datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _document_uuid(catalog: Catalog, name: str) -> uuid.UUID:
    """Return a UUID derived from the name and the purls, so equal catalogs get equal ids."""
    seed = "\n".join([name, *(p.purl for p in catalog.packages)])
    return uuid.uuid5(uuid.NAMESPACE_URL, "regward:" + seed)


def write_spdx(catalog: Catalog, name: str, *, created: datetime | None = None) -> bytes:
    """Return `catalog` as an SPDX 2.3 JSON document describing the image `name`.

    The image is the document's root package (purpose `CONTAINER`), which `CONTAINS` every package;
    each package carries its purl as a `PACKAGE-MANAGER` external reference.
    """
    root_id = "SPDXRef-DocumentRoot-Image"
    packages: list[dict[str, Any]] = [
        {
            "SPDXID": root_id,
            "name": name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "primaryPackagePurpose": "CONTAINER",
        }
    ]
    relationships: list[dict[str, str]] = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": root_id,
        }
    ]
    for number, package in enumerate(catalog.packages, start=1):
        spdx_id = f"SPDXRef-Package-{package.type}-{number}"
        entry: dict[str, Any] = {
            "SPDXID": spdx_id,
            "name": package.name,
            "versionInfo": package.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "primaryPackagePurpose": "OPERATING-SYSTEM"
            if package.type in _DISTRO_TYPES
            else "LIBRARY",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": package.purl,
                }
            ],
        }
        source = _source_info(package)
        if source:
            entry["sourceInfo"] = source
        packages.append(entry)
        relationships.append(
            {
                "spdxElementId": root_id,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": spdx_id,
            }
        )
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"urn:uuid:{_document_uuid(catalog, name)}",
        "creationInfo": {
            "created": _timestamp(created),
            "creators": [f"Tool: regward-{__version__}"],
        },
        "packages": packages,
        "relationships": relationships,
    }
    return json.dumps(document, indent=1).encode()


def _source_info(package: Package) -> str:
    parts = []
    if package.locations:
        parts.append("recorded in " + ", ".join(package.locations))
    if package.layer_digest:
        parts.append(f"layer {package.layer_digest}")
    return "; ".join(parts)


def write_cyclonedx(catalog: Catalog, name: str, *, created: datetime | None = None) -> bytes:
    """Return `catalog` as a CycloneDX 1.6 JSON document describing the container image `name`.

    Each component carries its purl, its layer as the `regward:layer_digest` property and each
    recording file as a `regward:location` property.
    """
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    bom = Bom(serial_number=_document_uuid(catalog, name))
    bom.metadata.timestamp = (created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    root = Component(name=name, type=ComponentType.CONTAINER, bom_ref="image")
    bom.metadata.component = root
    components = []
    for number, package in enumerate(catalog.packages, start=1):
        purl = PackageURL.from_string(package.purl)
        properties = []
        if package.layer_digest:
            properties.append(Property(name=PROPERTY_LAYER, value=package.layer_digest))
        properties.extend(
            Property(name=PROPERTY_LOCATION, value=path) for path in package.locations
        )
        component = Component(
            name=package.name,
            version=package.version,
            group=purl.namespace if package.type == "maven" else None,
            type=ComponentType.LIBRARY,
            purl=purl,
            bom_ref=f"pkg-{number}",
            properties=properties,
        )
        bom.components.add(component)
        components.append(component)
    # The image contains every package; the dependencies between packages are not recorded.
    bom.register_dependency(root, components)
    return JsonV1Dot6(bom).output_as_string(indent=1).encode()


# Reading.


def read_sbom(data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Catalog:
    """Read an SPDX 2.2/2.3 or CycloneDX 1.4–1.7 JSON document into a catalog.

    Packages without a purl, and the image itself (`pkg:oci`), are listed in `skipped`.

    Raises:
        SbomFormatError: the document is too large, not JSON, of another format or version, or
            malformed where the reader needs it.
    """
    if len(data) > limits.max_sbom_bytes:
        raise SbomFormatError(
            f"SBOM is {len(data)} bytes, the maximum is {limits.max_sbom_bytes}"
            " (Limits.max_sbom_bytes)"
        )
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise SbomFormatError(f"SBOM is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SbomFormatError("SBOM is not a JSON object")
    if "spdxVersion" in document:
        version = document["spdxVersion"]
        if version not in SPDX_VERSIONS:
            raise SbomFormatError(
                f"unsupported SPDX version {version!r}: expected SPDX-2.2 or SPDX-2.3"
            )
        packages, skipped = _read_spdx(document, limits)
    elif document.get("bomFormat") == "CycloneDX":
        version = document.get("specVersion")
        if version not in CYCLONEDX_VERSIONS:
            raise SbomFormatError(
                f"unsupported CycloneDX specVersion {version!r}: expected 1.4 to 1.7"
            )
        packages, skipped = _read_cyclonedx(document, limits)
    else:
        raise SbomFormatError(
            "not an SBOM: expected SPDX JSON (spdxVersion) or CycloneDX JSON (bomFormat)"
        )
    return Catalog(packages=tuple(packages), distro=_distro_of(packages), skipped=tuple(skipped))


def _read_spdx(document: dict[str, Any], limits: Limits) -> tuple[list[Package], list[str]]:
    entries = document.get("packages", [])
    if not isinstance(entries, list):
        raise SbomFormatError("SPDX packages is not a list")
    packages: list[Package] = []
    skipped: list[str] = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SbomFormatError(f"SPDX packages[{number}] is not an object")
        refs = entry.get("externalRefs", [])
        if not isinstance(refs, list):
            raise SbomFormatError(f"SPDX packages[{number}].externalRefs is not a list")
        purls = [
            ref["referenceLocator"]
            for ref in refs
            if isinstance(ref, dict)
            and ref.get("referenceCategory") in _PURL_REFERENCE_CATEGORIES
            and ref.get("referenceType") == "purl"
            and isinstance(ref.get("referenceLocator"), str)
        ]
        label = f"SPDX packages[{number}] ({entry.get('name', '')})"
        version = entry.get("versionInfo")
        package = _package(label, purls[0] if purls else None, version, skipped)
        if package is not None:
            packages.append(package)
            _check_count(packages, limits)
    return packages, skipped


def _components(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    top = document.get("components", [])
    if not isinstance(top, list):
        raise SbomFormatError("CycloneDX components is not a list")
    stack: list[tuple[str, Any, int]] = [
        (f"components[{i}]", c, 0) for i, c in reversed(list(enumerate(top)))
    ]
    while stack:
        label, component, depth = stack.pop()
        if not isinstance(component, dict):
            raise SbomFormatError(f"CycloneDX {label} is not an object")
        yield label, component
        nested = component.get("components", [])
        if not isinstance(nested, list):
            raise SbomFormatError(f"CycloneDX {label}.components is not a list")
        if nested and depth + 1 >= _MAX_COMPONENT_DEPTH:
            raise SbomFormatError(f"CycloneDX components nest deeper than {_MAX_COMPONENT_DEPTH}")
        stack.extend(
            (f"{label}.components[{i}]", nested[i], depth + 1) for i in reversed(range(len(nested)))
        )


def _read_cyclonedx(document: dict[str, Any], limits: Limits) -> tuple[list[Package], list[str]]:
    packages: list[Package] = []
    skipped: list[str] = []
    for label, component in _components(document):
        purl = component.get("purl")
        package = _package(
            f"CycloneDX {label} ({component.get('name', '')})",
            purl if isinstance(purl, str) else None,
            component.get("version"),
            skipped,
        )
        if package is None:
            continue
        layer, locations = _cyclonedx_properties(component)
        if layer or locations:
            package = Package(
                name=package.name,
                version=package.version,
                type=package.type,
                purl=package.purl,
                source_name=package.source_name,
                source_version=package.source_version,
                layer_digest=layer,
                locations=locations,
                distro=package.distro,
            )
        packages.append(package)
        _check_count(packages, limits)
    return packages, skipped


def _cyclonedx_properties(component: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    layer: str | None = None
    locations: list[str] = []
    properties = component.get("properties", [])
    if not isinstance(properties, list):
        return None, ()
    for prop in properties:
        if not isinstance(prop, dict) or not isinstance(prop.get("value"), str):
            continue
        if prop.get("name") == PROPERTY_LAYER:
            layer = prop["value"]
        elif prop.get("name") == PROPERTY_LOCATION:
            locations.append(prop["value"])
    return layer, tuple(locations)


def _check_count(packages: list[Package], limits: Limits) -> None:
    if len(packages) > limits.max_sbom_packages:
        raise SbomFormatError(
            f"SBOM lists more than {limits.max_sbom_packages} packages (Limits.max_sbom_packages)"
        )


def _package(
    label: str, purl_text: str | None, version: object, skipped: list[str]
) -> Package | None:
    if not purl_text:
        skipped.append(f"{label}: no purl")
        return None
    try:
        purl = PackageURL.from_string(purl_text)
    except ValueError as exc:
        skipped.append(f"{label}: invalid purl {purl_text!r}: {exc}")
        return None
    if purl.type in _SKIPPED_PURL_TYPES:
        return None
    qualifiers: dict[str, str] = dict(purl.qualifiers or {})
    resolved_version = purl.version or (version if isinstance(version, str) else "")
    if not resolved_version:
        skipped.append(f"{label}: no version")
        return None
    if purl.type == "rpm" and qualifiers.get("epoch") and ":" not in resolved_version:
        resolved_version = f"{qualifiers['epoch']}:{resolved_version}"
    source_name: str | None = None
    source_version: str | None = None
    upstream = qualifiers.get("upstream", "")
    if upstream and purl.type in ("deb", "apk"):
        source_name, _, tail = upstream.partition("@")
        source_version = tail or None
    elif purl.type == "apk":
        source_name = purl.name
    return Package(
        name=_ecosystem_name(purl),
        version=resolved_version,
        type=str(purl.type),
        purl=purl.to_string(),
        source_name=source_name,
        source_version=source_version,
        distro=_parse_distro(qualifiers.get("distro", "")) if purl.type in _DISTRO_TYPES else None,
    )


def _ecosystem_name(purl: PackageURL) -> str:
    """Return the package name as the catalogers spell it for each purl type."""
    if purl.type in ("npm", "golang") and purl.namespace:
        return f"{purl.namespace}/{purl.name}"
    return str(purl.name)


def _parse_distro(value: str) -> Distro | None:
    if not value:
        return None
    head, _, tail = value.rpartition("-")
    if head and tail[:1].isdigit():
        return Distro(id=head, version_id=tail)
    return Distro(id=value, version_id="")


def _distro_of(packages: list[Package]) -> Distro | None:
    for package in packages:
        if package.distro is not None:
            return package.distro
    return None
