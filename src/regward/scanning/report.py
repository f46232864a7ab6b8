"""Output formats of `regward scan`: a table, JSON, SARIF 2.1.0 and CycloneDX 1.6 with vulnerabilities.

The JSON document is `{"target", "digest", "feedRevision", "findings": [...]}` where each finding is
`{"id", "aliases", "package": {"name", "version", "ecosystem", "purl"}, "severity", "fixed"}`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from packageurl import PackageURL
from rich.console import Console
from rich.table import Table

from regward import __version__
from regward.policy.vulnerabilities import SeverityLevel
from regward.sbom.formats import PROPERTY_LAYER, PROPERTY_LOCATION
from regward.sbom.interface import Catalog
from regward.sbom.model import Package
from regward.vulns import Finding

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
OSV_URL = "https://osv.dev/vulnerability/"
"""Base URL of osv.dev's page per vulnerability id, given as each finding's help link."""

_SARIF_LEVELS = {
    SeverityLevel.CRITICAL: "error",
    SeverityLevel.HIGH: "error",
    SeverityLevel.MEDIUM: "warning",
    SeverityLevel.LOW: "note",
    SeverityLevel.UNKNOWN: "note",
}


def severity_of(finding: Finding) -> SeverityLevel:
    """Return a finding's severity as a policy severity level."""
    return SeverityLevel(str(finding.severity))


def sort_findings(findings: Sequence[Finding]) -> list[Finding]:
    """Return findings by severity (highest first), then package name, version and id."""
    return sorted(
        findings,
        key=lambda item: (
            -severity_of(item).rank,
            item.package.name,
            item.package.version,
            item.id,
        ),
    )


def findings_document(
    target: str, findings: Sequence[Finding], *, digest: str | None, feed_revision: str
) -> dict[str, Any]:
    """Return the JSON document of `regward scan --format json`."""
    return {
        "target": target,
        "digest": digest,
        "feedRevision": feed_revision,
        "findings": [
            {
                "id": finding.id,
                "aliases": list(finding.aliases),
                "package": {
                    "name": finding.package.name,
                    "version": finding.package.version,
                    "ecosystem": finding.ecosystem,
                    "purl": finding.package.purl,
                },
                "severity": str(finding.severity),
                "fixed": list(finding.fixed),
            }
            for finding in sort_findings(findings)
        ],
    }


def render_table(console: Console, findings: Sequence[Finding]) -> None:
    """Print the findings as a table: one row per vulnerability and package."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "SEVERITY", "PACKAGE", "VERSION", "FIXED IN", "ECOSYSTEM"):
        table.add_column(column, overflow="fold")
    for finding in sort_findings(findings):
        table.add_row(
            finding.id,
            str(finding.severity),
            finding.package.name,
            finding.package.version,
            ", ".join(finding.fixed) or "-",
            finding.ecosystem,
        )
    console.print(table)


def sarif_document(target: str, findings: Sequence[Finding]) -> dict[str, Any]:
    """Return the findings as a SARIF 2.1.0 log with one rule per vulnerability id."""
    ordered = sort_findings(findings)
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    for finding in ordered:
        level = _SARIF_LEVELS[severity_of(finding)]
        if finding.id not in rules:
            rules[finding.id] = {
                "id": finding.id,
                "name": finding.id,
                "shortDescription": {"text": finding.summary or finding.id},
                "helpUri": OSV_URL + finding.id,
                "defaultConfiguration": {"level": level},
                "properties": {
                    "tags": ["security", "vulnerability"],
                    "aliases": list(finding.aliases),
                },
            }
        fixed = ", ".join(finding.fixed) if finding.fixed else "none known"
        locations = finding.package.locations or (target,)
        results.append(
            {
                "ruleId": finding.id,
                "level": level,
                "message": {
                    "text": (
                        f"{finding.package.name} {finding.package.version} ({finding.ecosystem}) "
                        f"is affected by {finding.id}, severity {finding.severity}; "
                        f"fixed in: {fixed}"
                    )
                },
                "locations": [
                    {"physicalLocation": {"artifactLocation": {"uri": location}}}
                    for location in locations
                ],
                "properties": {
                    "severity": str(finding.severity),
                    "purl": finding.package.purl,
                    "fixed": list(finding.fixed),
                },
            }
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "regward",
                        "version": __version__,
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }


def cyclonedx_document(
    catalog: Catalog, findings: Sequence[Finding], name: str, *, created: datetime | None = None
) -> bytes:
    """Return a CycloneDX 1.6 JSON document with the catalog's components and the findings.

    Each vulnerability names the components it affects by `bom-ref`, its aliases as references,
    its severity as a rating and its fixed versions as the recommendation.
    """
    from cyclonedx.model import Property, XsUri
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.vulnerability import (
        BomTarget,
        Vulnerability,
        VulnerabilityRating,
        VulnerabilityReference,
        VulnerabilitySeverity,
        VulnerabilitySource,
    )
    from cyclonedx.output.json import JsonV1Dot6

    bom = Bom()
    bom.metadata.timestamp = (created or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    root = Component(name=name, type=ComponentType.CONTAINER, bom_ref="image")
    bom.metadata.component = root
    references: dict[Package, str] = {}
    components = []
    for number, package in enumerate(catalog.packages, start=1):
        purl = PackageURL.from_string(package.purl)
        properties = []
        if package.layer_digest:
            properties.append(Property(name=PROPERTY_LAYER, value=package.layer_digest))
        properties.extend(
            Property(name=PROPERTY_LOCATION, value=path) for path in package.locations
        )
        reference = f"pkg-{number}"
        component = Component(
            name=package.name,
            version=package.version,
            group=purl.namespace if package.type == "maven" else None,
            type=ComponentType.LIBRARY,
            purl=purl,
            bom_ref=reference,
            properties=properties,
        )
        references.setdefault(package, reference)
        bom.components.add(component)
        components.append(component)
    bom.register_dependency(root, components)

    for number, finding in enumerate(sort_findings(findings), start=1):
        source = VulnerabilitySource(name="OSV", url=XsUri(OSV_URL + finding.id))
        affected = references.get(finding.package)
        fixed = ", ".join(finding.fixed)
        bom.vulnerabilities.add(
            Vulnerability(
                bom_ref=f"vuln-{number}",
                id=finding.id,
                source=source,
                description=finding.summary or None,
                references=[
                    VulnerabilityReference(id=alias, source=VulnerabilitySource(name="alias"))
                    for alias in finding.aliases
                ],
                ratings=[
                    VulnerabilityRating(
                        source=source, severity=VulnerabilitySeverity(str(finding.severity))
                    )
                ],
                recommendation=f"upgrade to {fixed}" if fixed else None,
                affects=[BomTarget(ref=affected)] if affected is not None else None,
            )
        )
    return JsonV1Dot6(bom).output_as_string(indent=1).encode()


def dump_json(document: dict[str, Any]) -> str:
    """Return a JSON document as indented text with a final newline."""
    return json.dumps(document, indent=2) + "\n"
