"""Events regward notifies about, their JSON form, and the base error of `regward.notify`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from regward.errors import RegwardError


class NotifyError(RegwardError):
    """Notification settings are invalid, or an event could not be recorded."""


class EventType(StrEnum):
    """The kind of change an event reports about an image."""

    VULNERABILITY_DENIED = "vulnerability.denied"
    """A digest tagged in a protected repository gained findings that make its rule deny it."""

    VULNERABILITY_CLEARED = "vulnerability.cleared"
    """A digest that was denied for its findings is allowed again (a record was withdrawn or
    changed, or the allowlist grew)."""


@dataclass(frozen=True)
class FindingSummary:
    """One finding as an event names it."""

    id: str
    """The finding id, such as `PYSEC-2021-142` or `GHSA-…`."""
    severity: str
    package: str
    version: str
    aliases: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    """Versions that fix it, oldest first."""

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object of the finding."""
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "severity": self.severity,
            "package": self.package,
            "version": self.version,
            "fixed": list(self.fixed),
        }


@dataclass(frozen=True)
class Event:
    """One notification: an image whose decision changed because its findings changed."""

    type: EventType
    repository: str
    digest: str
    tags: tuple[str, ...]
    """Tags of `repository` that pointed at `digest` when the event was made."""
    rule: str | None
    findings: tuple[FindingSummary, ...]
    """The findings behind the decision (the denying ones for `vulnerability.denied`)."""
    reasons: tuple[str, ...] = ()
    """The reason messages of the decision."""
    policy_revision: str | None = None
    feed_revision: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    """A unique id that receivers can use to drop duplicates after a retried delivery."""
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def finding_ids(self) -> tuple[str, ...]:
        """The ids of `findings`, in order."""
        return tuple(finding.id for finding in self.findings)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON document POSTed to webhooks."""
        return {
            "id": self.id,
            "type": str(self.type),
            "time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "repository": self.repository,
            "digest": self.digest,
            "tags": list(self.tags),
            "rule": self.rule,
            "findingIds": list(self.finding_ids),
            "findings": [finding.to_json() for finding in self.findings],
            "reasons": list(self.reasons),
            "policyRevision": self.policy_revision,
            "feedRevision": self.feed_revision,
        }


def summarize(findings: Sequence[FindingSummary]) -> str:
    """Return up to five finding ids joined by commas, and how many more there are."""
    ids = [finding.id for finding in findings]
    text = ", ".join(ids[:5])
    if len(ids) > 5:
        text += f" and {len(ids) - 5} more"
    return text
