"""The OSV record model (OSV schema 1.7): pydantic at the JSON boundary, frozen dataclasses inside.

Field meanings follow https://ossf.github.io/osv-schema/. `parse_record` validates one record and
returns a `Record`; it keeps timestamps and versions as the exact strings of the source.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from regward.vulns.ecosystems import normalize_ecosystem
from regward.vulns.errors import OSVRecordError


class RangeType(enum.StrEnum):
    """The ordering of a range's event versions."""

    SEMVER = "SEMVER"
    ECOSYSTEM = "ECOSYSTEM"
    GIT = "GIT"
    UNKNOWN = "UNKNOWN"
    """A type this schema version does not define; such ranges are never evaluated."""


class EventKind(enum.StrEnum):
    """The kind of a range event."""

    INTRODUCED = "introduced"
    FIXED = "fixed"
    LAST_AFFECTED = "last_affected"
    LIMIT = "limit"


@dataclass(frozen=True, slots=True)
class Event:
    """One range event: a kind and the version (or commit) it refers to."""

    kind: EventKind
    version: str


@dataclass(frozen=True, slots=True)
class Range:
    """One `affected[].ranges[]` entry."""

    type: RangeType
    events: tuple[Event, ...]
    repo: str | None = None
    """The repository of a GIT range."""


@dataclass(frozen=True, slots=True)
class SeverityScore:
    """One `severity[]` entry: `CVSS_V2`, `CVSS_V3`, `CVSS_V4` (a vector) or `Ubuntu` (a priority word)."""

    type: str
    score: str


@dataclass(frozen=True, slots=True)
class AffectedPackage:
    """The `affected[].package` object."""

    ecosystem: str
    """The ecosystem exactly as the record spells it."""
    name: str
    purl: str | None = None

    @property
    def normalized_ecosystem(self) -> str:
        """The ecosystem in canonical spelling (see `normalize_ecosystem`)."""
        return normalize_ecosystem(self.ecosystem)


@dataclass(frozen=True, slots=True)
class Affected:
    """One `affected[]` entry: a package, its vulnerable ranges and versions, and extra data."""

    package: AffectedPackage | None
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()
    severity: tuple[SeverityScore, ...] = ()
    ecosystem_specific: Mapping[str, Any] = field(default_factory=dict, hash=False)
    database_specific: Mapping[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Record:
    """One OSV vulnerability record."""

    id: str
    modified: str
    published: str | None = None
    withdrawn: str | None = None
    aliases: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    summary: str = ""
    details: str = ""
    severity: tuple[SeverityScore, ...] = ()
    affected: tuple[Affected, ...] = ()
    database_specific: Mapping[str, Any] = field(default_factory=dict, hash=False)
    schema_version: str | None = None


# --- JSON boundary -------------------------------------------------------------------------------


_EVENT_KINDS = {kind.value: kind for kind in EventKind}
_RANGE_TYPES = {kind.value: kind for kind in RangeType}


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)


class _Severity(_Model):
    type: str
    score: str


class _Package(_Model):
    ecosystem: str
    name: str
    purl: str | None = None


class _Range(_Model):
    type: str
    repo: str | None = None
    events: tuple[dict[str, str], ...] = ()

    @pydantic.field_validator("events")
    @classmethod
    def _one_key_per_event(cls, events: tuple[dict[str, str], ...]) -> tuple[dict[str, str], ...]:
        for event in events:
            if len(event) != 1 or next(iter(event)) not in _EVENT_KINDS:
                expected = sorted(_EVENT_KINDS)
                raise ValueError(
                    f"an event must have exactly one of {expected}, got {sorted(event)}"
                )
        return events


class _Affected(_Model):
    package: _Package | None = None
    ranges: tuple[_Range, ...] = ()
    versions: tuple[str, ...] = ()
    severity: tuple[_Severity, ...] = ()
    ecosystem_specific: dict[str, Any] | None = None
    database_specific: dict[str, Any] | None = None


class _Record(_Model):
    id: str = pydantic.Field(min_length=1)
    modified: str
    published: str | None = None
    withdrawn: str | None = None
    aliases: list[str] | None = None
    upstream: list[str] | None = None
    related: list[str] | None = None
    summary: str | None = None
    details: str | None = None
    severity: list[_Severity] | None = None
    affected: list[_Affected] | None = None
    database_specific: dict[str, Any] | None = None
    schema_version: str | None = None


def _range(model: _Range) -> Range:
    range_type = _RANGE_TYPES.get(model.type, RangeType.UNKNOWN)
    events = tuple(
        Event(_EVENT_KINDS[kind], version)
        for event in model.events
        for kind, version in event.items()
    )
    return Range(type=range_type, events=events, repo=model.repo)


def _affected(model: _Affected) -> Affected:
    package = None
    if model.package is not None:
        package = AffectedPackage(model.package.ecosystem, model.package.name, model.package.purl)
    return Affected(
        package=package,
        ranges=tuple(_range(item) for item in model.ranges),
        versions=tuple(model.versions),
        severity=tuple(SeverityScore(item.type, item.score) for item in model.severity),
        ecosystem_specific=model.ecosystem_specific or {},
        database_specific=model.database_specific or {},
    )


def _convert(model: _Record) -> Record:
    return Record(
        id=model.id,
        modified=model.modified,
        published=model.published,
        withdrawn=model.withdrawn,
        aliases=tuple(model.aliases or ()),
        upstream=tuple(model.upstream or ()),
        related=tuple(model.related or ()),
        summary=model.summary or "",
        details=model.details or "",
        severity=tuple(SeverityScore(item.type, item.score) for item in model.severity or ()),
        affected=tuple(_affected(item) for item in model.affected or ()),
        database_specific=model.database_specific or {},
        schema_version=model.schema_version,
    )


def _error(exc: pydantic.ValidationError, record_id: object) -> OSVRecordError:
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first["loc"])
    return OSVRecordError(f"invalid OSV record {record_id!r}: {location}: {first['msg']}")


def parse_record(data: Any) -> Record:
    """Validate one decoded OSV JSON object and convert it to a `Record`.

    Raises:
        OSVRecordError: the object does not follow the OSV schema.
    """
    try:
        model = _Record.model_validate(data)
    except pydantic.ValidationError as exc:
        record_id = data.get("id") if isinstance(data, dict) else None
        raise _error(exc, record_id) from exc
    return _convert(model)


def parse_record_json(data: bytes) -> Record:
    """Validate one OSV record from JSON bytes (faster than decoding first) and convert it.

    Raises:
        OSVRecordError: the bytes are not one JSON object that follows the OSV schema.
    """
    try:
        model = _Record.model_validate_json(data)
    except pydantic.ValidationError as exc:
        raise _error(exc, None) from exc
    return _convert(model)


def _without_empty(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value not in (None, "", (), [], {})}


def record_to_json(record: Record) -> dict[str, Any]:
    """Return a record as an OSV JSON object, leaving out empty fields."""
    affected = []
    for entry in record.affected:
        package = None
        if entry.package is not None:
            package = _without_empty(
                {
                    "ecosystem": entry.package.ecosystem,
                    "name": entry.package.name,
                    "purl": entry.package.purl,
                }
            )
        ranges = [
            _without_empty(
                {
                    "type": item.type.value,
                    "repo": item.repo,
                    "events": [{event.kind.value: event.version} for event in item.events],
                }
            )
            for item in entry.ranges
        ]
        affected.append(
            _without_empty(
                {
                    "package": package,
                    "ranges": ranges,
                    "versions": list(entry.versions),
                    "severity": [{"type": s.type, "score": s.score} for s in entry.severity],
                    "ecosystem_specific": dict(entry.ecosystem_specific),
                    "database_specific": dict(entry.database_specific),
                }
            )
        )
    return _without_empty(
        {
            "schema_version": record.schema_version,
            "id": record.id,
            "modified": record.modified,
            "published": record.published,
            "withdrawn": record.withdrawn,
            "aliases": list(record.aliases),
            "upstream": list(record.upstream),
            "related": list(record.related),
            "summary": record.summary,
            "details": record.details,
            "severity": [{"type": s.type, "score": s.score} for s in record.severity],
            "affected": affected,
            "database_specific": dict(record.database_specific),
        }
    )
