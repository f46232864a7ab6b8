"""Policy evaluation: `evaluate(policy, rule, facts)` turns gathered evidence into a `Decision`.

The function is pure and deterministic: the facts carry everything it needs, and the result
depends only on its arguments. Gathering the facts (fetching and verifying signatures) is the
job of the gate and of `regward.signatures`.

An authority's evidence is VERIFIED, MISSING (no signature found), INVALID (a signature was
found but does not verify) or ERROR (the evidence could not be fetched). MISSING and INVALID
are findings about the image and always deny. ERROR is a finding about the infrastructure, so
the rule's `onError` decides, but only when no authority reported MISSING or INVALID.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, assert_never

from regward.policy.model import (
    DefaultAction,
    IndexPolicy,
    Mode,
    OnError,
    Policy,
    Rule,
    SignatureRequirement,
)

if TYPE_CHECKING:
    from regward.policy.attestations import AttestationEvidence
    from regward.policy.vulnerabilities import VulnerabilityFacts

logger = logging.getLogger(__name__)

MAX_DETAIL_LENGTH = 200
"""Maximum length of one evidence detail quoted in a reason message."""

MAX_LISTED_CHILDREN = 5
"""Maximum number of unsigned child digests named in one reason message."""

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")


class EvidenceStatus(StrEnum):
    """Outcome of checking one authority's signatures on one digest."""

    VERIFIED = "verified"
    """A signature by the authority's key verified."""

    MISSING = "missing"
    """No signature for the digest was found."""

    INVALID = "invalid"
    """Signatures were found, but none verified with the authority's key."""

    ERROR = "error"
    """The evidence could not be fetched, so nothing is known."""


@dataclass(frozen=True)
class AuthorityEvidence:
    """Result of the signature check for one authority of the rule."""

    authority: str
    """Name of the authority in the rule."""

    status: EvidenceStatus
    reasons: tuple[str, ...] = ()
    """Details for the reason message, such as "no signature found" or a fetch error."""


@dataclass(frozen=True)
class Facts:
    """Evidence about one manifest, gathered by the gate before evaluation."""

    repository: str
    digest: str
    is_index: bool
    """Whether the manifest is an image index (or Docker manifest list)."""

    signatures: tuple[AuthorityEvidence, ...]
    """Evidence for the manifest's own digest, one entry per authority of the rule."""

    children: tuple[tuple[str, tuple[AuthorityEvidence, ...]], ...] = ()
    """For an index: each child manifest digest with its evidence, used by self-or-children."""

    inherited_from: str | None = None
    """Digest of an allowed, signed index that lists this manifest as a child."""

    vulnerabilities: VulnerabilityFacts | None = None
    """The scan result, for a rule with a `vulnerabilities` section."""

    attestations: tuple[AttestationEvidence, ...] = ()
    """Evidence per attestation requirement of the rule, for a rule with `attestations`."""

    now: datetime | None = None
    """Evaluation time, for time-bound conditions such as an attestation's `maxAge`."""


class ReasonCode(StrEnum):
    """Machine-readable codes of the reasons that `evaluate` produces."""

    NO_RULE = "no-rule"
    SIGNATURE_MISSING = "signature-missing"
    SIGNATURE_INVALID = "signature-invalid"
    EVIDENCE_UNAVAILABLE = "evidence-unavailable"
    EVIDENCE_INCOMPLETE = "evidence-incomplete"
    CHILD_SIGNATURE_MISSING = "child-signature-missing"
    NO_AUTHORITIES = "no-authorities"
    SIGNATURE_COUNT = "signature-count"


@dataclass(frozen=True)
class Reason:
    """Cause of a denial, or a problem that an allowing decision tolerated."""

    code: str
    """A `ReasonCode` value; later policy sections add their own codes."""

    message: str
    """Description of the failure in lower case, naming the authority or repository involved."""

    fix: str
    """Action that makes the image pass."""


class Verdict(StrEnum):
    """The policy's verdict, before the rule's mode is applied."""

    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True)
class Decision:
    """The result of evaluating one manifest against the policy."""

    verdict: Verdict
    allowed: bool
    """Whether the gate serves the request. It is False only for an enforced DENY verdict.
    A DENY with no rule (defaultAction deny) is enforced, and a DENY under mode warn or audit
    is not."""

    mode: Mode | None
    """Mode of the rule that decided, or None when no rule matched."""

    rule: str | None
    repository: str
    digest: str
    reasons: tuple[Reason, ...]
    policy_revision: str
    valid_until: datetime | None = None
    """When an ALLOW that rests on a time-bound condition (an attestation's maxAge) expires;
    None when the decision does not expire by itself."""

    def message(self) -> str:
        """Return the decision as one line, such as the message of the OCI DENIED error.

        A denial names the rule, the image, every reason and every distinct fix.
        """
        subject = f"{self.repository}@{self.digest}"
        messages = "; ".join(reason.message for reason in self.reasons)
        if self.verdict is Verdict.ALLOW:
            actor = f"rule {self.rule!r}" if self.rule is not None else "defaultAction"
            text = f"{actor} allows {subject}"
            if messages:
                text += f": {messages}"
            return _one_line(text)

        actor = f"rule {self.rule!r}" if self.rule is not None else "policy"
        verb = "would deny" if self.allowed else "denies"
        text = f"{actor} {verb} {subject}: {messages}"
        fixes = list(dict.fromkeys(reason.fix for reason in self.reasons if reason.fix))
        if fixes:
            text += f"; fix: {' or '.join(fixes)}"
        if self.allowed and self.mode is not None:
            text += f" (mode {self.mode}, so the request was allowed)"
        return _one_line(text)


def evaluate(policy: Policy, rule: Rule | None, facts: Facts) -> Decision:
    """Decide whether the manifest described by `facts` may pass under `rule`.

    `rule` is the rule that `select_rule(policy, facts.repository)` returned; None applies
    the policy's defaultAction. A rule without a `signatures` section allows.
    """
    if rule is None:
        decision = _default_decision(policy, facts)
    else:
        verdict: Verdict = Verdict.ALLOW
        reasons: tuple[Reason, ...] = ()
        if rule.signatures is not None:
            verdict, reasons = _check_signatures(rule, rule.signatures, facts)
        if rule.vulnerabilities is not None:
            # Imported here because that module builds on this one's Reason and Verdict.
            from regward.policy.vulnerabilities import check_vulnerabilities

            scan_verdict, scan_reasons = check_vulnerabilities(
                rule, rule.vulnerabilities, facts.vulnerabilities
            )
            if scan_verdict is Verdict.DENY:
                verdict = Verdict.DENY
            reasons += scan_reasons
        valid_until: datetime | None = None
        if rule.attestations and facts.inherited_from is None:
            # Imported here because that module builds on this one's Reason and Verdict.
            from regward.policy.attestations import check_attestations

            attested, attestation_reasons, valid_until = check_attestations(
                rule, facts.attestations, facts.now, facts.digest
            )
            if attested is Verdict.DENY:
                verdict = Verdict.DENY
            reasons += attestation_reasons
        decision = _decide(policy, rule, facts, verdict, reasons)
        if rule.vulnerabilities is not None:
            from regward.policy.vulnerabilities import scan_valid_until

            scan_until = scan_valid_until(rule.vulnerabilities, facts.vulnerabilities)
            if scan_until is not None and (valid_until is None or scan_until < valid_until):
                valid_until = scan_until
        if verdict is Verdict.ALLOW and valid_until is not None:
            decision = replace(decision, valid_until=valid_until)
    logger.debug(
        "policy %s: %s@%s verdict %s (allowed %s) by rule %s, reasons %s",
        policy.revision[:12],
        facts.repository,
        facts.digest,
        decision.verdict,
        decision.allowed,
        decision.rule,
        [reason.code for reason in decision.reasons],
    )
    return decision


def _default_decision(policy: Policy, facts: Facts) -> Decision:
    if policy.default_action is DefaultAction.ALLOW:
        return _decide(policy, None, facts, Verdict.ALLOW, ())
    if policy.default_action is DefaultAction.DENY:
        reason = Reason(
            code=ReasonCode.NO_RULE,
            message=(
                f"no policy rule matches repository {facts.repository} and defaultAction is deny"
            ),
            fix=f"add a rule whose repositories match {facts.repository}",
        )
        return _decide(policy, None, facts, Verdict.DENY, (reason,))
    assert_never(policy.default_action)


def _decide(
    policy: Policy,
    rule: Rule | None,
    facts: Facts,
    verdict: Verdict,
    reasons: tuple[Reason, ...],
) -> Decision:
    mode = rule.mode if rule is not None else None
    enforced = mode is None or mode is Mode.ENFORCE
    return Decision(
        verdict=verdict,
        allowed=not (verdict is Verdict.DENY and enforced),
        mode=mode,
        rule=rule.name if rule is not None else None,
        repository=facts.repository,
        digest=facts.digest,
        reasons=reasons,
        policy_revision=policy.revision,
    )


def _check_signatures(
    rule: Rule, requirement: SignatureRequirement, facts: Facts
) -> tuple[Verdict, tuple[Reason, ...]]:
    # The checks run in this order:
    # (1) `count` authorities of the rule (default one) verified the digest itself;
    # (2) the manifest is a child of an allowed, signed index;
    # (3) for an index under self-or-children, every child verified;
    # (4) only fetch errors: the rule's onError decides;
    # (5) otherwise deny, listing each authority's evidence and which children are signed.
    names = requirement.authority_names
    needed = requirement.count if requirement.count is not None else 1
    evidence = _evidence_by_authority(facts.signatures, names)

    # (1): own signatures.
    verified = [
        name
        for name, item in evidence.items()
        if item is not None and item.status is EvidenceStatus.VERIFIED
    ]
    if verified and len(verified) >= needed:
        return Verdict.ALLOW, ()
    evidence = {name: item for name, item in evidence.items() if name not in verified}

    # (2): the gate already allowed an index that lists this digest and is itself signed.
    if facts.inherited_from is not None:
        return Verdict.ALLOW, ()

    # (3): children of an index.
    children_reason: Reason | None = None
    if facts.is_index and requirement.index_policy is IndexPolicy.SELF_OR_CHILDREN:
        unsigned = _unsigned_children(facts.children, names, needed)
        if facts.children and not unsigned:
            return Verdict.ALLOW, ()
        children_reason = _children_reason(facts, names, unsigned)
    signed_children_note: str | None = None
    if facts.is_index and requirement.index_policy is IndexPolicy.SELF:
        signed_children_note = _signed_children_note(facts, names, needed)

    # (4): nothing but fetch errors.
    statuses = {item.status if item is not None else None for item in evidence.values()}
    only_errors = EvidenceStatus.ERROR in statuses and statuses <= {EvidenceStatus.ERROR}
    if only_errors:
        reasons = tuple(
            _authority_reason(name, item, facts.digest) for name, item in evidence.items()
        )
        if rule.on_error is OnError.ALLOW:
            return Verdict.ALLOW, reasons
        if rule.on_error is OnError.DENY:
            if children_reason is not None:
                reasons += (children_reason,)
            return Verdict.DENY, reasons
        assert_never(rule.on_error)

    # (5): deny with every authority's evidence.
    reasons = tuple(_authority_reason(name, item, facts.digest) for name, item in evidence.items())
    if signed_children_note is not None and reasons:
        first = reasons[0]
        reasons = (
            replace(
                first,
                message=f"{first.message}; {signed_children_note}",
                fix=f"{first.fix}, or set indexPolicy: self-or-children to accept an index "
                "whose child manifests are all signed",
            ),
            *reasons[1:],
        )
    if verified:
        reasons += (
            Reason(
                code=ReasonCode.SIGNATURE_COUNT,
                message=(
                    f"signatures verified by {len(verified)} authorities "
                    f"({', '.join(repr(name) for name in verified)}), but rule {rule.name!r} "
                    f"requires {needed}"
                ),
                fix=f"sign {facts.digest} with the keys of {needed - len(verified)} more "
                f"authorities of rule {rule.name!r}",
            ),
        )
    if not names:
        # The loader rejects an empty authorities list; a hand-built rule still fails closed.
        reasons += (
            Reason(
                code=ReasonCode.NO_AUTHORITIES,
                message=f"rule {rule.name!r} requires signatures but lists no authorities",
                fix=f"add an authority to rule {rule.name!r}",
            ),
        )
    if children_reason is not None:
        reasons += (children_reason,)
    return Verdict.DENY, reasons


# Priority of the statuses when the facts list one authority more than once. A verified
# signature wins, then a definite finding about the image, then a fetch error.
_STATUS_PRIORITY = {
    EvidenceStatus.VERIFIED: 3,
    EvidenceStatus.INVALID: 2,
    EvidenceStatus.ERROR: 1,
    EvidenceStatus.MISSING: 0,
}


def _evidence_by_authority(
    entries: Iterable[AuthorityEvidence], names: Sequence[str]
) -> dict[str, AuthorityEvidence | None]:
    """Return one merged entry per authority of the rule, None where the facts have none.

    Entries for authorities that are not in the rule are ignored, so a signature by some
    other key never satisfies the rule.
    """
    merged: dict[str, AuthorityEvidence | None] = dict.fromkeys(names)
    for entry in entries:
        if entry.authority not in merged:
            continue
        current = merged[entry.authority]
        if current is None:
            merged[entry.authority] = entry
            continue
        status = max(current.status, entry.status, key=_STATUS_PRIORITY.__getitem__)
        reasons = tuple(dict.fromkeys(current.reasons + entry.reasons))
        merged[entry.authority] = AuthorityEvidence(entry.authority, status, reasons)
    return merged


def _unsigned_children(
    children: Iterable[tuple[str, tuple[AuthorityEvidence, ...]]],
    names: Sequence[str],
    needed: int = 1,
) -> list[str]:
    unsigned: list[str] = []
    for digest, entries in children:
        verified = {
            entry.authority
            for entry in entries
            if entry.status is EvidenceStatus.VERIFIED and entry.authority in names
        }
        if len(verified) < needed:
            unsigned.append(digest)
    return unsigned


def _signed_children_note(facts: Facts, names: Sequence[str], needed: int) -> str | None:
    """For an unsigned index under indexPolicy self, say which children are signed, if any."""
    unsigned = set(_unsigned_children(facts.children, names, needed))
    signed = [digest for digest, _ in facts.children if digest not in unsigned]
    if not signed:
        return None
    listed = ", ".join(signed[:MAX_LISTED_CHILDREN])
    hidden = len(signed) - MAX_LISTED_CHILDREN
    if hidden > 0:
        listed += f" and {hidden} more"
    return (
        f"index {facts.digest} is not signed itself, but {len(signed)} of "
        f"{len(facts.children)} child manifests are signed: {listed}"
    )


def _shorten(text: str) -> str:
    if len(text) <= MAX_DETAIL_LENGTH:
        return text
    return text[: MAX_DETAIL_LENGTH - 1] + "…"


def _detail(item: AuthorityEvidence, default: str) -> str:
    details = [_shorten(_one_line(text)) for text in item.reasons if text.strip()]
    return ", ".join(details) if details else default


def _authority_reason(name: str, item: AuthorityEvidence | None, digest: str) -> Reason:
    if item is None:
        return Reason(
            code=ReasonCode.EVIDENCE_INCOMPLETE,
            message=f"no signature evidence was gathered for authority {name!r}",
            fix="report this as a regward bug: the gate skipped an authority of the rule",
        )
    status = item.status
    if status is EvidenceStatus.MISSING:
        return Reason(
            code=ReasonCode.SIGNATURE_MISSING,
            message=(
                f"no signature verified by authority {name!r} "
                f"({_detail(item, 'no signature found')})"
            ),
            fix=f"sign {digest} with the key of authority {name!r}",
        )
    if status is EvidenceStatus.INVALID:
        return Reason(
            code=ReasonCode.SIGNATURE_INVALID,
            message=(
                f"no signature verified by authority {name!r} "
                f"(invalid signature: {_detail(item, 'no signature matched the key')})"
            ),
            fix=(
                f"sign {digest} again with the key of authority {name!r}, "
                "because the existing signatures do not verify with it"
            ),
        )
    if status is EvidenceStatus.ERROR:
        return Reason(
            code=ReasonCode.EVIDENCE_UNAVAILABLE,
            message=(
                f"signatures for authority {name!r} could not be fetched "
                f"({_detail(item, 'fetch failed')})"
            ),
            fix="retry when the registry that stores the signatures is reachable",
        )
    if status is EvidenceStatus.VERIFIED:
        # Unreachable: _check_signatures allows before building reasons when any authority
        # verified.
        raise AssertionError(f"authority {name!r} verified but a reason was requested")
    assert_never(status)


def _children_reason(facts: Facts, names: Sequence[str], unsigned: Sequence[str]) -> Reason:
    authorities = " or ".join(repr(name) for name in names)
    if not facts.children:
        message = f"index {facts.digest} lists no child manifests with signature evidence"
    else:
        listed = ", ".join(unsigned[:MAX_LISTED_CHILDREN])
        hidden = len(unsigned) - MAX_LISTED_CHILDREN
        if hidden > 0:
            listed += f" and {hidden} more"
        message = (
            f"{len(unsigned)} of {len(facts.children)} child manifests of index {facts.digest} "
            f"have no signature verified by authority {authorities}: {listed}"
        )
    return Reason(
        code=ReasonCode.CHILD_SIGNATURE_MISSING,
        message=message,
        fix=(
            f"sign index {facts.digest} or every child manifest with the key of authority "
            f"{authorities}"
        ),
    )


def _one_line(text: str) -> str:
    """Return `text` with control characters, including line breaks, replaced by spaces."""
    return _CONTROL_CHARS.sub(" ", text)
