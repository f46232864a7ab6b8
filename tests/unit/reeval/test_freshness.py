"""`vulnerabilities.maxScanAge`: stale results deny, fresh ones allow until they get too old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from regward.policy.evaluate import Facts, Verdict, evaluate
from regward.policy.load import parse_policy
from regward.policy.model import Policy
from regward.policy.vulnerabilities import ScanStatus, VulnerabilityFacts

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "a" * 64

POLICY = """\
defaultAction: deny
rules:
  - name: production
    repositories: ["prod/**"]
    vulnerabilities:
      maxScanAge: 24h
"""


@pytest.fixture
def policy() -> Policy:
    return parse_policy(POLICY)


def decide(policy: Policy, scan: VulnerabilityFacts) -> tuple[Verdict, list[str], datetime | None]:
    facts = Facts(
        repository="prod/app", digest=DIGEST, is_index=False, signatures=(), vulnerabilities=scan
    )
    decision = evaluate(policy, policy.rules[0], facts)
    return decision.verdict, [r.message for r in decision.reasons], decision.valid_until


def scanned(age: timedelta, status: ScanStatus = ScanStatus.SCANNED) -> VulnerabilityFacts:
    return VulnerabilityFacts(status, NOW.date(), scanned_at=NOW - age, now=NOW)


def test_max_scan_age_parsed(policy: Policy) -> None:
    requirement = policy.rules[0].vulnerabilities
    assert requirement is not None
    assert requirement.max_scan_age == timedelta(hours=24)


def test_fresh_result_allows_until_it_ages(policy: Policy) -> None:
    verdict, reasons, valid_until = decide(policy, scanned(timedelta(hours=1)))

    assert verdict is Verdict.ALLOW
    assert reasons == []
    assert valid_until == NOW + timedelta(hours=23)


def test_old_result_denies_as_stale(policy: Policy) -> None:
    verdict, reasons, valid_until = decide(policy, scanned(timedelta(hours=30)))

    assert verdict is Verdict.DENY
    assert len(reasons) == 1
    assert "the vulnerability scan result is stale: last matched 30h00m ago" in reasons[0]
    assert "at most 1d old (vulnerabilities.maxScanAge)" in reasons[0]
    assert valid_until is None


def test_stale_status_denies_with_detail(policy: Policy) -> None:
    scan = VulnerabilityFacts(
        ScanStatus.STALE,
        NOW.date(),
        detail="matching it again did not finish within 2 s",
        scanned_at=NOW - timedelta(hours=25),
        now=NOW,
    )

    verdict, reasons, _ = decide(policy, scan)

    assert verdict is Verdict.DENY
    assert reasons[0].endswith("; matching it again did not finish within 2 s")


def test_no_limit_accepts_any_age() -> None:
    policy = parse_policy(POLICY.replace("      maxScanAge: 24h\n", "      denyAtOrAbove: high\n"))

    verdict, _, valid_until = decide(policy, scanned(timedelta(days=400)))

    assert verdict is Verdict.ALLOW
    assert valid_until is None
