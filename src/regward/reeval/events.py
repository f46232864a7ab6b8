"""Turn findings that changed in a re-match into decisions that changed, and notify about them.

For each digest whose findings changed, and each repository of the portfolio that has it under
a tag, the rule that `select_rule` picks for the repository is checked twice with its
`vulnerabilities` section: on the findings before and after the re-match. An event is published
when the digest gains a finding that makes the rule deny it (`vulnerability.denied`, naming the
denying findings), and when a digest the rule denied for its findings is allowed again
(`vulnerability.cleared`). Repositories without a rule, without a `vulnerabilities` section, or
where no tag points at the digest produce no event.

NOTE: findings belong to platform manifests, and a multi-platform image is tagged through its
index. The portfolio does not link an index to its platform manifests, so a change in one of them
produces no event for the index's tags; the gate's decisions about the index still change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from regward.notify.interface import Event, EventType, FindingSummary
from regward.notify.webhooks import Notifier
from regward.policy.evaluate import Verdict
from regward.policy.match import select_rule
from regward.policy.model import Policy, Rule
from regward.policy.vulnerabilities import (
    ScanStatus,
    SeverityLevel,
    VulnerabilityFacts,
    VulnerabilityFinding,
    VulnerabilityRequirement,
    check_vulnerabilities,
)
from regward.reeval.membership import MembershipStore, Placement
from regward.reeval.rematch import FindingLike, ResultChange

logger = logging.getLogger(__name__)


def policy_finding(finding: FindingLike) -> VulnerabilityFinding:
    """Return a matcher or stored finding in the form the policy check reads."""
    try:
        severity = SeverityLevel(str(finding.severity))
    except ValueError:
        severity = SeverityLevel.UNKNOWN
    return VulnerabilityFinding(
        id=finding.id,
        aliases=tuple(getattr(finding, "aliases", ())),
        package=finding.package.name,
        version=finding.package.version,
        ecosystem=str(getattr(finding, "ecosystem", "")),
        severity=severity,
        fixed=tuple(finding.fixed),
    )


def denying_findings(
    rule: Rule,
    requirement: VulnerabilityRequirement,
    findings: Iterable[VulnerabilityFinding],
    today: date,
) -> list[VulnerabilityFinding]:
    """Return the findings that would each make `rule` deny the image on their own."""
    denying: list[VulnerabilityFinding] = []
    for finding in findings:
        facts = VulnerabilityFacts(status=ScanStatus.SCANNED, today=today, findings=(finding,))
        verdict, _ = check_vulnerabilities(rule, requirement, facts)
        if verdict is Verdict.DENY:
            denying.append(finding)
    return denying


@dataclass(frozen=True)
class DecisionChange:
    """A decision about a digest in a repository that a re-match changed."""

    placement: Placement
    rule: Rule
    gained: tuple[VulnerabilityFinding, ...]
    """Denying findings the digest did not have before; empty when it was cleared."""
    denying: tuple[VulnerabilityFinding, ...]
    """Every denying finding after the re-match."""
    reasons: tuple[str, ...]
    feed_revision: str

    @property
    def cleared(self) -> bool:
        """True when the digest was denied for its findings before and is allowed now."""
        return not self.denying


class DecisionNotifier:
    """A scheduler listener that publishes events when decisions of tagged digests change.

    `on_change` callbacks receive each digest whose findings changed, before the events are
    built, such as the gate's decision cache invalidation.
    """

    def __init__(
        self,
        policy: Callable[[], Policy],
        membership: MembershipStore,
        notifier: Notifier | None,
        *,
        on_change: Sequence[Callable[[str], None]] = (),
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        """Create a listener.

        Args:
            policy: returns the current policy (the gate reloads it while running).
            membership: where each digest was seen and under which tags.
            notifier: publishes events; None only computes them (`decision_changes`).
            on_change: called with each digest whose findings changed.
            today: the date allowlist expiry is judged on.
        """
        self.policy = policy
        self.membership = membership
        self.notifier = notifier
        self.on_change = list(on_change)
        self.today = today
        self.published = 0

    def findings_changed(self, changes: Sequence[ResultChange]) -> None:
        """Invalidate, compute the decision changes, and publish one event per change."""
        for change in changes:
            for callback in self.on_change:
                callback(change.digest)
        for decision in self.decision_changes(changes):
            self._publish(decision)

    def decision_changes(self, changes: Sequence[ResultChange]) -> list[DecisionChange]:
        """Return the decisions of tagged digests that the changes turn."""
        policy = self.policy()
        today = self.today()
        placements = self.membership.placements([change.digest for change in changes])
        found: list[DecisionChange] = []
        for change in changes:
            for placement in placements.get(change.digest, []):
                if not placement.tags:
                    continue
                rule = select_rule(policy, placement.repository)
                if rule is None or rule.vulnerabilities is None:
                    continue
                decision = self._compare(rule, rule.vulnerabilities, placement, change, today)
                if decision is not None:
                    found.append(decision)
        return found

    def _compare(
        self,
        rule: Rule,
        requirement: VulnerabilityRequirement,
        placement: Placement,
        change: ResultChange,
        today: date,
    ) -> DecisionChange | None:
        before = denying_findings(
            rule, requirement, (policy_finding(f) for f in change.before), today
        )
        after_findings = tuple(policy_finding(f) for f in change.after)
        after = denying_findings(rule, requirement, after_findings, today)
        known = {(f.id, f.package, f.version) for f in before}
        gained = tuple(f for f in after if (f.id, f.package, f.version) not in known)
        if gained:
            facts = VulnerabilityFacts(
                status=ScanStatus.SCANNED, today=today, findings=after_findings
            )
            _, reasons = check_vulnerabilities(rule, requirement, facts)
            return DecisionChange(
                placement,
                rule,
                gained,
                tuple(after),
                tuple(reason.message for reason in reasons),
                change.feed_revision,
            )
        if before and not after:
            return DecisionChange(placement, rule, (), (), (), change.feed_revision)
        return None

    def _publish(self, decision: DecisionChange) -> None:
        placement = decision.placement
        findings = decision.gained if not decision.cleared else ()
        event = Event(
            type=EventType.VULNERABILITY_CLEARED
            if decision.cleared
            else EventType.VULNERABILITY_DENIED,
            repository=placement.repository,
            digest=placement.digest,
            tags=placement.tags,
            rule=decision.rule.name,
            findings=tuple(
                FindingSummary(
                    id=finding.id,
                    severity=str(finding.severity),
                    package=finding.package,
                    version=finding.version,
                    aliases=finding.aliases,
                    fixed=finding.fixed,
                )
                for finding in findings
            ),
            reasons=decision.reasons,
            policy_revision=self.policy().revision,
            feed_revision=decision.feed_revision,
        )
        logger.info(
            "%s: %s@%s (tags %s) under rule %r, findings %s",
            event.type,
            placement.repository,
            placement.digest,
            ", ".join(placement.tags),
            decision.rule.name,
            ", ".join(event.finding_ids) or "none",
        )
        if self.notifier is not None:
            self.notifier.publish(event)
            self.published += 1
