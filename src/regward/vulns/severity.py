"""Severity bands and how a record's severity is derived.

Evidence for one record, in order:

1. the highest band among its CVSS v2/v3/v4 vectors, top level and per affected package, scored
   with the `cvss` library;
2. a severity word in `database_specific`/`ecosystem_specific` (GHSA `severity`, Debian `urgency`,
   Ubuntu priority);
3. for Red Hat-style errata (AlmaLinux, Rocky, Red Hat), the `Important:` prefix of the summary.

The matcher then falls back to the best severity of alias records present in the feed.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

from regward.vulns.osv import Record, SeverityScore

logger = logging.getLogger(__name__)


class Severity(enum.StrEnum):
    """A severity band; bands compare by rank, `unknown` lowest."""

    UNKNOWN = "unknown"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for unknown up to 4 for critical."""
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)


_RANK = {
    Severity.UNKNOWN: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}

# Words used by GHSA (MODERATE), Debian urgency, Ubuntu priority and Red Hat errata (Important).
_WORDS = {
    "negligible": Severity.LOW,
    "unimportant": Severity.LOW,
    "low": Severity.LOW,
    "moderate": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "important": Severity.HIGH,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}
_WORD_KEYS = ("severity", "urgency", "priority")
_ERRATA_PREFIX = re.compile(r"\s*(low|moderate|important|critical)\s*:", re.IGNORECASE)
_ERRATA_ECOSYSTEMS = ("AlmaLinux", "Rocky Linux", "Red Hat")


def band_for_score(score: float, cvss_version: int) -> Severity:
    """Return the band of a CVSS base score.

    CVSS v3 and v4 use their qualitative scale (0.1–3.9 low, 4.0–6.9 medium, 7.0–8.9 high,
    9.0–10.0 critical). CVSS v2 has no critical band (7.0–10.0 is high). A score of 0.0 ("none")
    counts as low.
    """
    if cvss_version == 2:
        if score >= 7.0:
            return Severity.HIGH
        return Severity.MEDIUM if score >= 4.0 else Severity.LOW
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    return Severity.MEDIUM if score >= 4.0 else Severity.LOW


def severity_of_vector(entry: SeverityScore) -> Severity | None:
    """Return the band of one `severity[]` entry, or None when it is not a valid CVSS vector."""
    try:
        if entry.type == "CVSS_V3":
            return band_for_score(float(CVSS3(entry.score).base_score), 3)
        if entry.type == "CVSS_V4":
            return band_for_score(float(CVSS4(entry.score).base_score), 4)
        if entry.type == "CVSS_V2":
            return band_for_score(float(CVSS2(entry.score.removeprefix("CVSS:2.0/")).base_score), 2)
    except (CVSSError, ValueError, KeyError, IndexError):
        logger.debug("ignoring invalid %s vector %r", entry.type, entry.score, exc_info=True)
        return None
    if entry.type.lower() == "ubuntu":
        return _WORDS.get(entry.score.strip().lower())
    return None


def _word_severity(data: Mapping[str, Any]) -> Severity | None:
    best: Severity | None = None
    for key in _WORD_KEYS:
        value = data.get(key)
        if isinstance(value, str):
            found = _WORDS.get(value.strip().lower())
            if found is not None and (best is None or found > best):
                best = found
    return best


def _best(values: Iterable[Severity | None]) -> Severity | None:
    found = [value for value in values if value is not None]
    return max(found) if found else None


def record_severity(record: Record) -> Severity | None:
    """Return a record's own severity (vectors, then severity words), or None when it states none."""
    entries = list(record.severity)
    for affected in record.affected:
        entries.extend(affected.severity)
    by_vector = _best(severity_of_vector(entry) for entry in entries)
    if by_vector is not None:
        return by_vector
    words: list[Severity | None] = [_word_severity(record.database_specific)]
    for affected in record.affected:
        words.append(_word_severity(affected.database_specific))
        words.append(_word_severity(affected.ecosystem_specific))
    by_word = _best(words)
    if by_word is not None:
        return by_word
    is_errata = any(
        affected.package is not None and affected.package.ecosystem.startswith(_ERRATA_ECOSYSTEMS)
        for affected in record.affected
    )
    match = _ERRATA_PREFIX.match(record.summary) if is_errata else None
    return _WORDS[match.group(1).lower()] if match else None
