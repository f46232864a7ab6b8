"""The `vulnerabilities` section of a rule: its wire model, its frozen model, and the pure check.

A rule with this section denies an image when a finding of the image's scan reaches the
`denyAtOrAbove` severity, after three filters: allowlist entries that have not expired, then
`fixableOnly`, then `unknownSeverity` for findings whose records state no severity. An image that
could not be scanned is decided by `onUnscanned`. With `maxScanAge`, a result matched longer ago
than that is stale and denies, whatever its findings.

The check is pure: the gate gathers the findings (`regward.scanning`) and passes them, with the
current date, in `VulnerabilityFacts`.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from regward.policy.evaluate import Reason, Verdict

if TYPE_CHECKING:
    from regward.policy.model import Rule

logger = logging.getLogger(__name__)

MAX_LISTED_FINDINGS = 20
"""Findings named one by one in a denial; the rest are counted in one more reason."""

MAX_ALLOWLIST_ENTRIES = 10_000
"""Largest allowlist accepted in one rule."""


class SeverityLevel(StrEnum):
    """A severity band as a policy names it; levels compare by rank, `unknown` lowest."""

    UNKNOWN = "unknown"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for unknown up to 4 for critical."""
        return _RANKS[self]


_RANKS = {
    SeverityLevel.UNKNOWN: 0,
    SeverityLevel.LOW: 1,
    SeverityLevel.MEDIUM: 2,
    SeverityLevel.HIGH: 3,
    SeverityLevel.CRITICAL: 4,
}


class OnUnscanned(StrEnum):
    """Verdict for an image whose vulnerabilities could not be determined."""

    DENY = "deny"
    ALLOW = "allow"


class VulnerabilityReasonCode(StrEnum):
    """Reason codes of the vulnerability check."""

    VULNERABILITY_FOUND = "vulnerability-found"
    """A finding at or above `denyAtOrAbove` that no allowlist entry covers."""

    UNSCANNED = "unscanned"
    """The image cannot be scanned: its layers cannot be cataloged, or the gate has no feed."""

    SCAN_UNAVAILABLE = "scan-unavailable"
    """Scanning failed for a reason that may pass (registry or feed unreachable, scan timed out)."""

    SCAN_STALE = "scan-stale"
    """The scan result is older than `maxScanAge` and could not be matched again in time."""


# --- wire format ------------------------------------------------------------------------------

_VULNERABILITY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}")


def _parse_expiry(value: Any) -> date:
    """Accept a YAML date (`2027-06-30`) or the same text quoted; reject times and other types."""
    # A datetime is a date too, but an entry expires on a day, not at a time.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    # The policy loader appends the value it got to this message.
    raise PydanticCustomError("invalid_expiry", "expected a date such as 2027-06-30")


def _check_max_scan_age(value: Any) -> Any:
    if isinstance(value, str):
        # Imported here because the wire module of the policy imports this one.
        from regward.policy._wire import parse_duration

        parse_duration(value)
    return value


def _check_vulnerability_id(value: Any) -> Any:
    if isinstance(value, str) and _VULNERABILITY_ID.fullmatch(value) is None:
        raise PydanticCustomError(
            "invalid_vulnerability_id",
            "expected a vulnerability id such as CVE-2018-18074 or PYSEC-2018-28",
        )
    return value


class _SectionModel(BaseModel):
    # The same settings as the other policy wire models: unknown keys fail, no type coercion.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AllowlistEntryWire(_SectionModel):
    """One entry of `vulnerabilities.allowlist`."""

    id: Annotated[str, BeforeValidator(_check_vulnerability_id)]
    expires: Annotated[date, BeforeValidator(_parse_expiry)] | None = None
    reason: Annotated[str, Field(max_length=1000)] = ""


SeverityWord = Literal["low", "medium", "high", "critical"]


class VulnerabilitiesWire(_SectionModel):
    """The `vulnerabilities` section of a rule."""

    deny_at_or_above: SeverityWord = Field(default="high", alias="denyAtOrAbove")
    unknown_severity: SeverityWord = Field(default="high", alias="unknownSeverity")
    fixable_only: bool = Field(default=False, alias="fixableOnly")
    on_unscanned: Literal["deny", "allow"] = Field(default="deny", alias="onUnscanned")
    allowlist: Annotated[list[AllowlistEntryWire], Field(max_length=MAX_ALLOWLIST_ENTRIES)] = Field(
        default_factory=list
    )
    max_scan_age: (
        Annotated[str, Field(max_length=32), BeforeValidator(_check_max_scan_age)] | None
    ) = Field(default=None, alias="maxScanAge")


# --- model ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowlistEntry:
    """A vulnerability that the rule tolerates, until an optional expiry date."""

    id: str
    """Matched, ignoring case, against a finding's id and every one of its aliases."""

    expires: date | None
    """Last day on which the entry applies (UTC); None for no expiry."""

    reason: str = ""

    def expired(self, today: date) -> bool:
        """Tell whether the entry no longer applies on `today`."""
        return self.expires is not None and today > self.expires


@dataclass(frozen=True)
class VulnerabilityRequirement:
    """The `vulnerabilities` section of a rule, validated."""

    deny_at_or_above: SeverityLevel = SeverityLevel.HIGH
    unknown_severity: SeverityLevel = SeverityLevel.HIGH
    """The severity a finding without one counts as."""

    fixable_only: bool = False
    """Count only findings that name a fixed version."""

    on_unscanned: OnUnscanned = OnUnscanned.DENY
    allowlist: tuple[AllowlistEntry, ...] = ()
    max_scan_age: timedelta | None = None
    """The oldest scan result the rule accepts; None accepts any age."""


def convert_vulnerabilities(wire: VulnerabilitiesWire) -> VulnerabilityRequirement:
    """Build the frozen section from its validated wire model."""
    return VulnerabilityRequirement(
        deny_at_or_above=SeverityLevel(wire.deny_at_or_above),
        unknown_severity=SeverityLevel(wire.unknown_severity),
        fixable_only=wire.fixable_only,
        on_unscanned=OnUnscanned(wire.on_unscanned),
        allowlist=tuple(
            AllowlistEntry(id=entry.id, expires=entry.expires, reason=entry.reason)
            for entry in wire.allowlist
        ),
        max_scan_age=_duration(wire.max_scan_age) if wire.max_scan_age is not None else None,
    )


def _duration(value: str) -> timedelta:
    from regward.policy._wire import parse_duration

    return parse_duration(value)


# --- facts ------------------------------------------------------------------------------------


class ScanStatus(StrEnum):
    """The state of an image's vulnerability scan."""

    SCANNED = "scanned"
    """The image was cataloged and matched; `findings` is complete for the feed revision."""

    NOT_APPLICABLE = "not-applicable"
    """The manifest carries signatures, attestations or SBOMs, which are not run as containers."""

    UNSCANNED = "unscanned"
    """The image cannot be scanned (layers that cannot be cataloged, or no feed configured)."""

    UNAVAILABLE = "unavailable"
    """Scanning failed for now (registry or feed unreachable, timeout); a later pull retries."""

    STALE = "stale"
    """The stored result is older than the rule's `maxScanAge` and matching it again did not
    finish within the gate's time budget."""


@dataclass(frozen=True)
class VulnerabilityFinding:
    """One vulnerability in one package of the image, in the form the policy check reads."""

    id: str
    """The OSV id of the matched record."""

    aliases: tuple[str, ...]
    package: str
    version: str
    """The installed version."""

    ecosystem: str
    """The OSV ecosystem whose data matched, such as `PyPI` or `Debian:12`."""

    severity: SeverityLevel
    fixed: tuple[str, ...] = ()
    """Versions that fix the vulnerability and are newer than the installed one."""


@dataclass(frozen=True)
class VulnerabilityFacts:
    """The scan result of one manifest, gathered by the gate."""

    status: ScanStatus
    today: date
    """The current UTC date, against which allowlist expiry is judged."""

    findings: tuple[VulnerabilityFinding, ...] = ()
    detail: str = ""
    """The reason the image is unscanned or unavailable, for the reason message."""

    remedy: str = ""
    """The action that makes an unscanned image scannable, for the reason's fix."""

    feed_revision: str = ""
    scanned_at: datetime | None = None
    """When the findings were last matched (or confirmed for the current feed); None if unknown."""
    now: datetime | None = None
    """The current time, against which `maxScanAge` is judged; None skips the age check."""


# --- check ------------------------------------------------------------------------------------

# Expired allowlist entries already reported, so that each is logged once per process.
_warned_expired: set[tuple[str, str, date]] = set()
_warned_lock = threading.Lock()


def check_vulnerabilities(
    rule: Rule, requirement: VulnerabilityRequirement, facts: VulnerabilityFacts | None
) -> tuple[Verdict, tuple[Reason, ...]]:
    """Decide the `vulnerabilities` section of `rule` for one manifest.

    `facts` None means the gate gathered nothing, which counts as unscanned.
    """
    # The checks run in this order:
    # (0) with `maxScanAge`, a stale result denies;
    # (1) no scan result: `onUnscanned` decides;
    # (2) each finding: skip it when an unexpired allowlist entry names its id or an alias,
    #     or when `fixableOnly` is set and it names no fixed version;
    # (3) a finding whose severity (or `unknownSeverity`) reaches `denyAtOrAbove` denies.

    # (0): a result older than maxScanAge.
    stale = _stale_reason(rule, requirement, facts)
    if stale is not None:
        return Verdict.DENY, (stale,)

    # (1): nothing to match.
    if facts is None or facts.status in (ScanStatus.UNSCANNED, ScanStatus.UNAVAILABLE):
        reason = _unscanned_reason(rule, facts)
        if requirement.on_unscanned is OnUnscanned.ALLOW:
            return Verdict.ALLOW, (reason,)
        return Verdict.DENY, (reason,)
    if facts.status is ScanStatus.NOT_APPLICABLE:
        return Verdict.ALLOW, ()

    # (2) and (3): filter and count.
    allowlist = {entry.id.upper(): entry for entry in requirement.allowlist}
    counted: list[tuple[VulnerabilityFinding, SeverityLevel, AllowlistEntry | None]] = []
    for finding in facts.findings:
        entry = _allowlist_entry(allowlist, finding, facts.today)
        if entry is not None and not entry.expired(facts.today):
            continue
        if entry is not None:
            _warn_expired(rule.name, entry)
        if requirement.fixable_only and not finding.fixed:
            continue
        severity = finding.severity
        if severity is SeverityLevel.UNKNOWN:
            severity = requirement.unknown_severity
        if severity.rank >= requirement.deny_at_or_above.rank:
            counted.append((finding, severity, entry))
    if not counted:
        return Verdict.ALLOW, ()

    counted.sort(key=lambda item: (-item[1].rank, item[0].id, item[0].package, item[0].version))
    reasons = [
        _finding_reason(rule, finding, severity, expired)
        for finding, severity, expired in counted[:MAX_LISTED_FINDINGS]
    ]
    hidden = len(counted) - MAX_LISTED_FINDINGS
    if hidden > 0:
        reasons.append(
            Reason(
                code=VulnerabilityReasonCode.VULNERABILITY_FOUND,
                message=(
                    f"{hidden} more findings at or above {requirement.deny_at_or_above} "
                    "are not listed"
                ),
                fix="run `regward scan` on the image to list every finding",
            )
        )
    return Verdict.DENY, tuple(reasons)


def scan_age(facts: VulnerabilityFacts) -> timedelta | None:
    """Return how old the scan result is, None when its time or the current time is unknown."""
    if facts.scanned_at is None or facts.now is None:
        return None
    return max(timedelta(0), facts.now - facts.scanned_at)


def scan_valid_until(
    requirement: VulnerabilityRequirement, facts: VulnerabilityFacts | None
) -> datetime | None:
    """Return when an allowing decision stops holding because its scan gets too old."""
    if requirement.max_scan_age is None or facts is None or facts.scanned_at is None:
        return None
    if facts.status is not ScanStatus.SCANNED:
        return None
    return facts.scanned_at + requirement.max_scan_age


def _stale_reason(
    rule: Rule, requirement: VulnerabilityRequirement, facts: VulnerabilityFacts | None
) -> Reason | None:
    limit = requirement.max_scan_age
    if limit is None or facts is None:
        return None
    age = scan_age(facts)
    too_old = facts.status is ScanStatus.SCANNED and age is not None and age > limit
    if facts.status is not ScanStatus.STALE and not too_old:
        return None
    when = (
        f"last matched {_format_age(age)} ago, at {facts.scanned_at.isoformat(timespec='seconds')}"
        if age is not None and facts.scanned_at is not None
        else "the time of the last match is unknown"
    )
    detail = f"; {facts.detail}" if facts.detail else ""
    return Reason(
        code=VulnerabilityReasonCode.SCAN_STALE,
        message=(
            f"the vulnerability scan result is stale: {when}, and rule {rule.name!r} accepts "
            f"results at most {_format_age(limit)} old (vulnerabilities.maxScanAge){detail}"
        ),
        fix=(
            "retry the pull, which matches the image again; keep `regward serve --feed-interval` "
            f"or `regward worker` running so results stay current, or raise maxScanAge in rule "
            f"{rule.name!r}"
        ),
    )


def _format_age(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{value.total_seconds():.1f}s"


def _allowlist_entry(
    allowlist: dict[str, AllowlistEntry], finding: VulnerabilityFinding, today: date
) -> AllowlistEntry | None:
    """Return the entry that names the finding's id or an alias, preferring one that applies."""
    entries = [
        allowlist[name.upper()]
        for name in (finding.id, *finding.aliases)
        if name.upper() in allowlist
    ]
    for entry in entries:
        if not entry.expired(today):
            return entry
    return entries[0] if entries else None


def _warn_expired(rule_name: str, entry: AllowlistEntry) -> None:
    assert entry.expires is not None
    key = (rule_name, entry.id, entry.expires)
    with _warned_lock:
        if key in _warned_expired:
            return
        _warned_expired.add(key)
    logger.warning(
        "allowlist entry %s of rule %r expired on %s and no longer applies",
        entry.id,
        rule_name,
        entry.expires.isoformat(),
    )


def _unscanned_reason(rule: Rule, facts: VulnerabilityFacts | None) -> Reason:
    if facts is not None and facts.status is ScanStatus.UNAVAILABLE:
        return Reason(
            code=VulnerabilityReasonCode.SCAN_UNAVAILABLE,
            message=f"the image could not be scanned for vulnerabilities now ({facts.detail})",
            fix="retry the pull; the gate scans the image again",
        )
    detail = facts.detail if facts is not None and facts.detail else "no scan result"
    remedy = facts.remedy if facts is not None and facts.remedy else "make the image scannable"
    return Reason(
        code=VulnerabilityReasonCode.UNSCANNED,
        message=f"the image cannot be scanned for vulnerabilities ({detail})",
        fix=f"{remedy}, or set vulnerabilities.onUnscanned: allow in rule {rule.name!r}",
    )


def _finding_reason(
    rule: Rule,
    finding: VulnerabilityFinding,
    severity: SeverityLevel,
    expired: AllowlistEntry | None,
) -> Reason:
    aliases = f" ({', '.join(finding.aliases)})" if finding.aliases else ""
    counted_as = (
        f"{severity} (severity unknown, counted as {severity})"
        if finding.severity is SeverityLevel.UNKNOWN
        else str(severity)
    )
    fixed = f"fixed in {', '.join(finding.fixed)}" if finding.fixed else "no fixed version is known"
    message = (
        f"vulnerability {finding.id}{aliases} of severity {counted_as} in "
        f"{finding.package} {finding.version} ({finding.ecosystem}), {fixed}"
    )
    if expired is not None and expired.expires is not None:
        message += f"; its allowlist entry {expired.id} expired on {expired.expires.isoformat()}"
    if finding.fixed:
        fix = f"upgrade {finding.package} to {finding.fixed[0]} or later"
    else:
        fix = f"remove {finding.package} from the image"
    fix += f", or allowlist {finding.id} in rule {rule.name!r}"
    return Reason(code=VulnerabilityReasonCode.VULNERABILITY_FOUND, message=message, fix=fix)
