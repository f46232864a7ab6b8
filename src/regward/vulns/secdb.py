"""Alpine secdb (`v3.x/main.yaml`, or the JSON the secdb service publishes) converted to OSV records.

The conversion follows osv.dev's Alpine converter: one `ALPINE-<id>` record per vulnerability id,
with one affected entry per (release, origin package) and an ECOSYSTEM range `introduced 0`,
`fixed <version>`. A fixed version of `0` means the release was never affected, so it gives no
entry. The record names the CVE in `upstream`, as OSV 1.7 requires of distro records, and the matcher
groups a record with its single upstream id like an alias.

Secdb entries contain malformed versions (`10.2.22.r0`, `1.18.-r2`); they are kept as published,
and the matcher reports them as unparseable instead of ordering them.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from regward.vulns.ecosystems import normalize_ecosystem
from regward.vulns.errors import FeedError
from regward.vulns.osv import Affected, AffectedPackage, Event, EventKind, Range, RangeType, Record

logger = logging.getLogger(__name__)

_ID = re.compile(r"[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9._:-]*")
NOT_AFFECTED = "0"
"""The secdb fixed version that means "this release was never affected"."""
MODIFIED = "1970-01-01T00:00:00Z"
"""Secdb carries no dates, so converted records get this fixed `modified` time."""


def read_secdb_file(path: Path) -> Mapping[str, Any]:
    """Read one secdb document (YAML or JSON).

    Raises:
        FeedError: the file cannot be read or is not a secdb document.
    """
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise FeedError(f"cannot read Alpine secdb file {path}: {exc}") from exc
    if not isinstance(document, dict) or "packages" not in document:
        raise FeedError(f"{path} is not an Alpine secdb document: no 'packages' key")
    return document


def is_secdb_document(document: object) -> bool:
    """Return whether a decoded JSON or YAML document looks like a secdb file."""
    return isinstance(document, dict) and "packages" in document and "distroversion" in document


def convert(documents: Iterable[Mapping[str, Any]]) -> list[Record]:
    """Convert secdb documents into OSV records, one per vulnerability id."""
    # (vulnerability id) -> (ecosystem, origin) -> fixed versions in document order
    fixes: dict[str, dict[tuple[str, str], list[str]]] = defaultdict(lambda: defaultdict(list))
    for document in documents:
        release = str(document.get("distroversion", ""))
        if not release:
            logger.debug("skipping a secdb document without distroversion")
            continue
        ecosystem = normalize_ecosystem(f"Alpine:{release}")
        for entry in document.get("packages") or []:
            package = (entry or {}).get("pkg") or {}
            origin = str(package.get("name", ""))
            secfixes = package.get("secfixes") or {}
            if not origin or not isinstance(secfixes, dict):
                continue
            for fixed, ids in secfixes.items():
                for vuln_id in _ids(ids):
                    versions = fixes[vuln_id][(ecosystem, origin)]
                    if str(fixed) not in versions:
                        versions.append(str(fixed))
    records = (_record(vuln_id, per_package) for vuln_id, per_package in sorted(fixes.items()))
    return [record for record in records if record.affected]


def _ids(value: object) -> list[str]:
    """Return the vulnerability ids of one secfixes entry; entries may hold several ids or a remark."""
    items = value if isinstance(value, list) else [value]
    found: list[str] = []
    for item in items:
        found.extend(match.group(0) for match in _ID.finditer(str(item or "")))
    return found


def _record(vuln_id: str, per_package: Mapping[tuple[str, str], list[str]]) -> Record:
    affected: list[Affected] = []
    for (ecosystem, origin), versions in sorted(per_package.items()):
        fixed_versions = [fixed for fixed in versions if fixed != NOT_AFFECTED]
        if NOT_AFFECTED in versions or not fixed_versions:
            # "0" anywhere for this release means the release was never affected.
            continue
        ranges = tuple(
            Range(
                type=RangeType.ECOSYSTEM,
                events=(Event(EventKind.INTRODUCED, "0"), Event(EventKind.FIXED, fixed)),
            )
            for fixed in fixed_versions
        )
        package = AffectedPackage(ecosystem, origin, f"pkg:apk/alpine/{origin}?arch=source")
        affected.append(Affected(package=package, ranges=ranges))
    return Record(
        id=f"ALPINE-{vuln_id}",
        modified=MODIFIED,
        upstream=(vuln_id,),
        summary=f"{vuln_id} fixed in Alpine packages",
        affected=tuple(affected),
    )


def load_secdb(paths: Iterable[Path]) -> list[Record]:
    """Read secdb files or directories of them (`*.yaml`, `*.yml`, `*.json`) and convert them.

    Raises:
        FeedError: a file cannot be read or is not a secdb document.
    """
    documents: list[Mapping[str, Any]] = []
    for path in paths:
        files = (
            sorted(
                p for p in path.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
            )
            if path.is_dir()
            else [path]
        )
        documents.extend(read_secdb_file(file) for file in files)
    return convert(documents)
