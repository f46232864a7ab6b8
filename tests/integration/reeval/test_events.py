"""Decision changes and their events, from findings that changed in a re-match."""

from __future__ import annotations

from datetime import date

from regward.notify import NotificationSettings, NotificationStore, Notifier
from regward.policy.load import parse_policy
from regward.reeval import Membership, MembershipStore, ResultChange, Sighting
from regward.reeval.events import DecisionNotifier
from regward.sbom.model import Package
from regward.store import Store
from regward.vulns import Finding, Severity

POLICY = """\
defaultAction: allow
rules:
  - name: production
    repositories: ["prod/**"]
    vulnerabilities:
      denyAtOrAbove: high
      allowlist:
        - id: PYSEC-ALLOWED
  - name: development
    repositories: ["dev/**"]
"""

DIGEST = "sha256:" + "a" * 64


def finding(vuln_id: str, severity: Severity, name: str = "requests") -> Finding:
    package = Package(name, "2.19.0", "pypi", f"pkg:pypi/{name}@2.19.0")
    return Finding(
        id=vuln_id,
        aliases=("CVE-1",),
        package=package,
        severity=severity,
        fixed=("2.20.0",),
        summary="",
        ecosystem="PyPI",
    )


def listener(store: Store) -> tuple[DecisionNotifier, NotificationStore, list[str]]:
    membership = MembershipStore(store.engine)
    membership.record(
        [
            Sighting("prod/app", DIGEST, "v1", Membership.PULL),
            Sighting("dev/app", DIGEST, "v1", Membership.PUSH),
            Sighting("prod/untagged", DIGEST, None, Membership.PUSH),
        ]
    )
    notifications = NotificationStore(store.engine)
    invalidated: list[str] = []
    policy = parse_policy(POLICY)
    notifier = DecisionNotifier(
        lambda: policy,
        membership,
        Notifier(notifications, NotificationSettings()),
        on_change=[invalidated.append],
        today=lambda: date(2026, 12, 1),
    )
    return notifier, notifications, invalidated


def test_new_denying_finding_publishes_event(store: Store) -> None:
    notifier, notifications, invalidated = listener(store)
    change = ResultChange(
        DIGEST,
        (finding("PYSEC-LOW", Severity.LOW),),
        (finding("PYSEC-LOW", Severity.LOW), finding("PYSEC-HIGH", Severity.HIGH)),
        "rev-2",
    )

    notifier.findings_changed([change])

    assert invalidated == [DIGEST]
    (event,) = notifications.events()
    assert event["type"] == "vulnerability.denied"
    assert event["repository"] == "prod/app"
    assert event["tags"] == ["v1"]
    assert event["digest"] == DIGEST
    assert event["rule"] == "production"
    assert event["findingIds"] == ["PYSEC-HIGH"]
    assert event["feedRevision"] == "rev-2"
    assert "PYSEC-HIGH" in event["reasons"][0]


def test_allowlisted_or_low_findings_publish_nothing(store: Store) -> None:
    notifier, notifications, _ = listener(store)
    change = ResultChange(
        DIGEST,
        (),
        (finding("PYSEC-LOW", Severity.LOW), finding("PYSEC-ALLOWED", Severity.CRITICAL)),
        "rev-2",
    )

    notifier.findings_changed([change])

    assert notifications.events() == []


def test_withdrawal_publishes_cleared(store: Store) -> None:
    notifier, notifications, _ = listener(store)
    change = ResultChange(DIGEST, (finding("PYSEC-HIGH", Severity.HIGH),), (), "rev-3")

    notifier.findings_changed([change])

    (event,) = notifications.events()
    assert event["type"] == "vulnerability.cleared"
    assert event["findingIds"] == []


def test_more_denying_findings_publish_again(store: Store) -> None:
    notifier, notifications, _ = listener(store)
    high = finding("PYSEC-HIGH", Severity.HIGH)
    critical = finding("PYSEC-CRIT", Severity.CRITICAL, name="gitpython")

    notifier.findings_changed([ResultChange(DIGEST, (high,), (high, critical), "rev-4")])
    notifier.findings_changed([ResultChange(DIGEST, (high, critical), (critical,), "rev-5")])

    events = notifications.events()
    assert [event["findingIds"] for event in events] == [["PYSEC-CRIT"]]
