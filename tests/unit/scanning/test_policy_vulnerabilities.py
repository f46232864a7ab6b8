"""The `vulnerabilities` rule section: loading, and the pure check in `evaluate`."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from regward.policy.errors import PolicyError
from regward.policy.evaluate import Facts, Verdict, evaluate
from regward.policy.load import parse_policy
from regward.policy.model import Policy
from regward.policy.vulnerabilities import (
    MAX_LISTED_FINDINGS,
    OnUnscanned,
    ScanStatus,
    SeverityLevel,
    VulnerabilityFacts,
    VulnerabilityFinding,
)

TODAY = date(2026, 6, 1)

POLICY = """\
defaultAction: deny
rules:
  - name: scanned
    repositories: ["team/**"]
    vulnerabilities:
{section}
"""


def load(section: str) -> Policy:
    indented = "\n".join("      " + line for line in section.strip("\n").splitlines())
    return parse_policy(POLICY.format(section=indented))


def finding(
    vulnerability_id: str = "PYSEC-2023-262",
    severity: SeverityLevel = SeverityLevel.CRITICAL,
    *,
    aliases: tuple[str, ...] = ("CVE-2023-43364",),
    package: str = "searchor",
    version: str = "2.4.0",
    fixed: tuple[str, ...] = ("2.4.2",),
) -> VulnerabilityFinding:
    return VulnerabilityFinding(
        id=vulnerability_id,
        aliases=aliases,
        package=package,
        version=version,
        ecosystem="PyPI",
        severity=severity,
        fixed=fixed,
    )


def decide(
    policy: Policy,
    *findings: VulnerabilityFinding,
    status: ScanStatus = ScanStatus.SCANNED,
    detail: str = "",
    today: date = TODAY,
) -> tuple[Verdict, list[str], list[str]]:
    facts = Facts(
        repository="team/app",
        digest="sha256:" + "a" * 64,
        is_index=False,
        signatures=(),
        vulnerabilities=VulnerabilityFacts(
            status=status, today=today, findings=findings, detail=detail
        ),
    )
    decision = evaluate(policy, policy.rules[0], facts)
    return (
        decision.verdict,
        [reason.code for reason in decision.reasons],
        [reason.message for reason in decision.reasons],
    )


def test_section_defaults() -> None:
    requirement = load("{}").rules[0].vulnerabilities

    assert requirement is not None
    assert requirement.deny_at_or_above is SeverityLevel.HIGH
    assert requirement.unknown_severity is SeverityLevel.HIGH
    assert requirement.fixable_only is False
    assert requirement.on_unscanned is OnUnscanned.DENY
    assert requirement.allowlist == ()


def test_section_every_key() -> None:
    policy = load(
        """
denyAtOrAbove: critical
unknownSeverity: low
fixableOnly: true
onUnscanned: allow
allowlist:
  - id: CVE-2018-18074
    expires: 2027-06-30
    reason: "not reachable: requests is only used offline"
  - id: PYSEC-2023-74
"""
    )
    requirement = policy.rules[0].vulnerabilities

    assert requirement is not None
    assert requirement.deny_at_or_above is SeverityLevel.CRITICAL
    assert requirement.unknown_severity is SeverityLevel.LOW
    assert requirement.fixable_only is True
    assert requirement.on_unscanned is OnUnscanned.ALLOW
    assert requirement.allowlist[0].id == "CVE-2018-18074"
    assert requirement.allowlist[0].expires == date(2027, 6, 30)
    assert requirement.allowlist[0].reason.startswith("not reachable")
    assert requirement.allowlist[1].expires is None


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("denyAtOrAbove: severe", "rules[0].vulnerabilities.denyAtOrAbove"),
        ("unknownSeverity: unknown", "rules[0].vulnerabilities.unknownSeverity"),
        ("fixableOnly: 'no'", "rules[0].vulnerabilities.fixableOnly"),
        ("onUnscanned: warn", "rules[0].vulnerabilities.onUnscanned"),
        ("denyAbove: high", "unknown key 'denyAbove'"),
        ("allowlist:\n  - id: CVE-1\n    expires: soon", "expected a date such as 2027-06-30"),
        ("allowlist:\n  - id: 'CVE 1'", "expected a vulnerability id"),
        ("allowlist:\n  - reason: x", "allowlist[0].id"),
    ],
)
def test_section_invalid(section: str, expected: str) -> None:
    with pytest.raises(PolicyError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load(section)


def test_critical_finding_denies_with_details() -> None:
    policy = load("denyAtOrAbove: critical")

    verdict, codes, messages = decide(policy, finding())

    assert verdict is Verdict.DENY
    assert codes == ["vulnerability-found"]
    assert "PYSEC-2023-262" in messages[0]
    assert "CVE-2023-43364" in messages[0]
    assert "searchor 2.4.0" in messages[0]
    assert "fixed in 2.4.2" in messages[0]


def test_finding_below_threshold_allows() -> None:
    policy = load("denyAtOrAbove: critical")

    verdict, codes, _ = decide(policy, finding(severity=SeverityLevel.HIGH))

    assert verdict is Verdict.ALLOW
    assert codes == []


def test_no_findings_allows() -> None:
    verdict, codes, _ = decide(load("denyAtOrAbove: low"))

    assert verdict is Verdict.ALLOW
    assert codes == []


@pytest.mark.parametrize(
    ("unknown_severity", "expected"),
    [("low", Verdict.ALLOW), ("medium", Verdict.ALLOW), ("high", Verdict.DENY)],
)
def test_unknown_severity_counts_as_configured(unknown_severity: str, expected: Verdict) -> None:
    policy = load(f"denyAtOrAbove: high\nunknownSeverity: {unknown_severity}")
    unrated = finding("PYSEC-2018-28", SeverityLevel.UNKNOWN, package="requests")

    verdict, _, messages = decide(policy, unrated)

    assert verdict is expected
    if expected is Verdict.DENY:
        assert "severity unknown, counted as high" in messages[0]


def test_fixable_only_ignores_unfixed() -> None:
    policy = load("denyAtOrAbove: critical\nfixableOnly: true")
    unfixed = finding("PYSEC-2023-209", package="json-logic", fixed=(), aliases=())

    verdict_unfixed, _, _ = decide(policy, unfixed)
    verdict_fixed, _, _ = decide(policy, unfixed, finding())

    assert verdict_unfixed is Verdict.ALLOW
    assert verdict_fixed is Verdict.DENY


def test_unfixed_counts_without_fixable_only() -> None:
    policy = load("denyAtOrAbove: critical")
    unfixed = finding("PYSEC-2023-209", package="json-logic", fixed=(), aliases=())

    verdict, _, messages = decide(policy, unfixed)

    assert verdict is Verdict.DENY
    assert "no fixed version is known" in messages[0]


@pytest.mark.parametrize("listed", ["PYSEC-2023-262", "CVE-2023-43364", "cve-2023-43364"])
def test_allowlist_matches_id_or_alias(listed: str) -> None:
    policy = load(f"denyAtOrAbove: critical\nallowlist:\n  - id: {listed}\n    reason: accepted")

    verdict, codes, _ = decide(policy, finding())

    assert verdict is Verdict.ALLOW
    assert codes == []


def test_allowlist_applies_through_expiry_day() -> None:
    policy = load("allowlist:\n  - id: PYSEC-2023-262\n    expires: 2026-06-01")

    verdict, _, _ = decide(policy, finding(), today=date(2026, 6, 1))

    assert verdict is Verdict.ALLOW


def test_expired_allowlist_entry_stops_applying(caplog: pytest.LogCaptureFixture) -> None:
    policy = load("allowlist:\n  - id: CVE-2023-43364\n    expires: 2026-05-31")

    with caplog.at_level(logging.WARNING, logger="regward.policy.vulnerabilities"):
        verdict, codes, messages = decide(policy, finding(), today=date(2026, 6, 1))

    assert verdict is Verdict.DENY
    assert codes == ["vulnerability-found"]
    assert "allowlist entry CVE-2023-43364 expired on 2026-05-31" in messages[0]
    warnings = [record.getMessage() for record in caplog.records]
    assert any("CVE-2023-43364" in text and "expired" in text for text in warnings)


def test_unexpired_alias_entry_wins_over_expired() -> None:
    policy = load(
        "allowlist:\n"
        "  - id: PYSEC-2023-262\n    expires: 2020-01-01\n"
        "  - id: CVE-2023-43364\n    expires: 2030-01-01"
    )

    verdict, _, _ = decide(policy, finding())

    assert verdict is Verdict.ALLOW


@pytest.mark.parametrize(
    ("status", "code"),
    [(ScanStatus.UNSCANNED, "unscanned"), (ScanStatus.UNAVAILABLE, "scan-unavailable")],
)
def test_unscanned_follows_on_unscanned(status: ScanStatus, code: str) -> None:
    denying = load("onUnscanned: deny")
    allowing = load("onUnscanned: allow")

    denied, denied_codes, messages = decide(denying, status=status, detail="layer is not a tar")
    allowed, allowed_codes, _ = decide(allowing, status=status, detail="layer is not a tar")

    assert denied is Verdict.DENY
    assert denied_codes == [code]
    assert "layer is not a tar" in messages[0]
    assert allowed is Verdict.ALLOW
    assert allowed_codes == [code]


def test_missing_facts_count_as_unscanned() -> None:
    policy = load("{}")
    facts = Facts(repository="team/app", digest="sha256:" + "b" * 64, is_index=False, signatures=())

    decision = evaluate(policy, policy.rules[0], facts)

    assert decision.verdict is Verdict.DENY
    assert [reason.code for reason in decision.reasons] == ["unscanned"]


def test_accessory_manifest_is_not_applicable() -> None:
    verdict, codes, _ = decide(load("denyAtOrAbove: low"), status=ScanStatus.NOT_APPLICABLE)

    assert verdict is Verdict.ALLOW
    assert codes == []


def test_many_findings_listed_up_to_limit() -> None:
    policy = load("denyAtOrAbove: low")
    many = [finding(f"PYSEC-2023-{number}", package=f"pkg{number}") for number in range(30)]

    verdict, codes, messages = decide(policy, *many)

    assert verdict is Verdict.DENY
    assert len(codes) == MAX_LISTED_FINDINGS + 1
    assert messages[-1].startswith(f"{30 - MAX_LISTED_FINDINGS} more findings")


def test_findings_ordered_by_severity() -> None:
    policy = load("denyAtOrAbove: low")
    low = finding("PYSEC-1", SeverityLevel.LOW, package="a")
    critical = finding("PYSEC-2", SeverityLevel.CRITICAL, package="b")

    _, _, messages = decide(policy, low, critical)

    assert "PYSEC-2" in messages[0]
    assert "PYSEC-1" in messages[1]


def test_denial_message_names_finding_and_fix() -> None:
    policy = load("denyAtOrAbove: critical")
    facts = Facts(
        repository="team/app",
        digest="sha256:" + "c" * 64,
        is_index=False,
        signatures=(),
        vulnerabilities=VulnerabilityFacts(ScanStatus.SCANNED, TODAY, (finding(),)),
    )

    message = evaluate(policy, policy.rules[0], facts).message()

    assert "rule 'scanned' denies team/app@sha256:" in message
    assert "PYSEC-2023-262" in message
    assert "upgrade searchor to 2.4.2 or later" in message
