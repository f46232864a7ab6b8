"""Reading the predicates that policies check: SLSA provenance, vulnerability scans, SBOMs.

Pure functions over verified in-toto statements. Field locations:
- SLSA provenance v0.2 (slsa.dev/provenance/v0.2): `builder.id`; the source is
  `invocation.configSource.uri`, else the `materials[].uri` entries.
- SLSA provenance v1 (slsa.dev/provenance/v1): `runDetails.builder.id`; the source is
  `buildDefinition.externalParameters.workflow.repository` (GitHub Actions builders),
  `externalParameters.source` (string or `{uri}`), else `resolvedDependencies[].uri`.
- cosign vuln (specs/COSIGN_VULN_ATTESTATION_SPEC.md): `metadata.scanFinishedOn`, RFC 3339.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from regward.signatures.dsse import Statement
from regward.signatures.errors import SignatureError

SPDX_DOCUMENT = "https://spdx.dev/Document"
"""Predicate type of an SPDX SBOM (cosign `--type spdx` and `spdxjson`)."""

CYCLONEDX_BOM = "https://cyclonedx.org/bom"
"""Predicate type of a CycloneDX SBOM (cosign `--type cyclonedx`)."""

SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
"""Predicate type of SLSA provenance v0.2."""

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
"""Predicate type of SLSA provenance v1."""

COSIGN_VULN = "https://cosign.sigstore.dev/attestation/vuln/v1"
"""Predicate type of cosign's vulnerability scan attestation."""

SCAN_CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a scan time may lie before it is rejected as forged or mis-set."""

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})"
)


class PredicateError(SignatureError):
    """A predicate lacks a field a policy checks, or the field is malformed."""


class SbomFormat(StrEnum):
    """SBOM formats recognised in attestation predicates."""

    SPDX = "spdx"
    CYCLONEDX = "cyclonedx"


@dataclass(frozen=True)
class Provenance:
    """The builder and sources that a SLSA provenance statement records."""

    slsa_version: str
    """`0.2` or `1`."""
    builder_id: str | None
    """The builder identity URI."""
    source_repositories: tuple[str, ...]
    """Source repository URIs named by the provenance, normalised with
    `normalize_repository_uri`, most specific first."""
    build_type: str | None
    """The build type URI."""


def sbom_format(predicate_type: str) -> SbomFormat | None:
    """Return the SBOM format of a predicate type, accepting versioned variants."""
    if predicate_type == SPDX_DOCUMENT or predicate_type.startswith(SPDX_DOCUMENT + "/"):
        return SbomFormat.SPDX
    if predicate_type == CYCLONEDX_BOM or predicate_type.startswith(CYCLONEDX_BOM + "/"):
        return SbomFormat.CYCLONEDX
    return None


def is_provenance(predicate_type: str) -> bool:
    """Tell whether the predicate type is SLSA provenance v0.2 or v1."""
    return predicate_type in (SLSA_PROVENANCE_V02, SLSA_PROVENANCE_V1)


def normalize_repository_uri(uri: str) -> str:
    """Return a repository URI reduced to `scheme://host/path`, for comparison.

    Removes a `git+` prefix, a `#fragment`, an `@ref` after the path, a trailing `.git` and
    trailing slashes, and lower-cases the scheme and host, so that
    `git+https://github.com/Acme/app.git@refs/heads/main` becomes `https://github.com/Acme/app`.
    """
    text = uri.strip()
    if text.startswith("git+"):
        text = text[4:]
    text = text.split("#", 1)[0]
    scheme, separator, rest = text.partition("://")
    if not separator:
        return text.rstrip("/")
    host, slash, path = rest.partition("/")
    if "@" in path:
        path = path.split("@", 1)[0]
    path = path.rstrip("/")
    if path.endswith(".git"):
        path = path[:-4]
    return f"{scheme.lower()}://{host.lower()}{slash}{path}".rstrip("/")


def read_provenance(statement: Statement) -> Provenance:
    """Read the builder and source repository of a SLSA provenance statement.

    Raises:
        PredicateError: the statement is not SLSA provenance v0.2 or v1.
    """
    predicate_type = statement.normalized_predicate_type
    predicate = statement.predicate
    if predicate_type == SLSA_PROVENANCE_V02:
        sources: list[str] = []
        config_uri = _string(predicate, "invocation", "configSource", "uri")
        if config_uri:
            sources.append(config_uri)
        sources.extend(_uris(predicate.get("materials")))
        return Provenance(
            slsa_version="0.2",
            builder_id=_string(predicate, "builder", "id"),
            source_repositories=_normalized(sources),
            build_type=_string(predicate, "buildType"),
        )
    if predicate_type == SLSA_PROVENANCE_V1:
        definition = _mapping(predicate, "buildDefinition")
        external = _mapping(definition, "externalParameters")
        sources = []
        workflow_repository = _string(external, "workflow", "repository")
        if workflow_repository:
            sources.append(workflow_repository)
        source = external.get("source")
        if isinstance(source, str):
            sources.append(source)
        elif isinstance(source, Mapping) and isinstance(source.get("uri"), str):
            sources.append(source["uri"])
        sources.extend(_uris(definition.get("resolvedDependencies")))
        return Provenance(
            slsa_version="1",
            builder_id=_string(predicate, "runDetails", "builder", "id"),
            source_repositories=_normalized(sources),
            build_type=_string(definition, "buildType"),
        )
    raise PredicateError(
        f"statement is not SLSA provenance: got predicate type {predicate_type!r}, expected "
        f"{SLSA_PROVENANCE_V02!r} or {SLSA_PROVENANCE_V1!r}"
    )


def read_scan_finished(statement: Statement) -> datetime:
    """Return `metadata.scanFinishedOn` of a cosign vuln statement as an aware UTC datetime.

    Raises:
        PredicateError: the field is missing or not an RFC 3339 timestamp.
    """
    value = _string(statement.predicate, "metadata", "scanFinishedOn")
    if value is None:
        raise PredicateError("vulnerability scan predicate has no metadata.scanFinishedOn")
    return parse_rfc3339(value)


def check_scan_age(
    finished: datetime, *, now: datetime, max_age: timedelta, skew: timedelta = SCAN_CLOCK_SKEW
) -> str | None:
    """Return why a scan that finished at `finished` is unacceptable at `now`, or None.

    A scan older than `max_age` is stale. A scan more than `skew` in the future is rejected,
    because a future timestamp would otherwise stay "fresh" for as long as its author likes.
    """
    if finished > now + skew:
        return (
            f"scan finished on {finished.isoformat()}, which is in the future by more than "
            f"{_duration(skew)} of allowed clock skew"
        )
    age = now - finished
    if age > max_age:
        return (
            f"scan finished on {finished.isoformat()}, {_duration(age)} ago, "
            f"more than maxAge {_duration(max_age)}"
        )
    return None


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with any number of fraction digits into an aware UTC datetime.

    Trivy writes nine fraction digits; they are truncated to microseconds.

    Raises:
        PredicateError: `text` is not an RFC 3339 date-time with an offset.
    """
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise PredicateError(f"invalid RFC 3339 timestamp: {text[:64]!r}")
    date, clock, fraction, offset = match.groups()
    micro = (fraction or "").ljust(6, "0")[:6]
    zone = "+00:00" if offset in ("Z", "z") else offset
    try:
        parsed = datetime.fromisoformat(f"{date}T{clock}.{micro}{zone}")
    except ValueError as exc:
        raise PredicateError(f"invalid RFC 3339 timestamp: {text[:64]!r}: {exc}") from exc
    return parsed.astimezone(UTC)


def _duration(value: timedelta) -> str:
    seconds = int(abs(value.total_seconds()))
    hours, remainder = divmod(seconds, 3600)
    minutes = remainder // 60
    if hours >= 48:
        return f"{hours // 24}d{hours % 24}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{remainder % 60}s"


def _mapping(document: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    current: Any = document
    for key in path:
        current = current.get(key) if isinstance(current, Mapping) else None
    return current if isinstance(current, Mapping) else {}


def _string(document: Mapping[str, Any], *path: str) -> str | None:
    parent = _mapping(document, *path[:-1])
    value = parent.get(path[-1])
    return value if isinstance(value, str) and value else None


def _uris(items: object) -> list[str]:
    if not isinstance(items, list):
        return []
    return [
        item["uri"]
        for item in items
        if isinstance(item, Mapping) and isinstance(item.get("uri"), str)
    ]


def _normalized(uris: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(normalize_repository_uri(uri) for uri in uris if uri))
