"""The `attestations` section of a rule: its frozen model, its conversion and its pure check.

Each entry requires a verified in-toto statement of one predicate type about the image, signed by
`count` (default one) of its authorities, or, with `allowUnsigned: true`, an unsigned BuildKit
statement. Conditions narrow what counts: `provenance` (SLSA builder id and source repository)
and `maxAge` (the age of a cosign vuln scan, from `metadata.scanFinishedOn`). A scan time more
than five minutes in the future is rejected.

The check is pure: the gate verifies the attestations (`regward.signatures`) and passes what
they say, with the evaluation time, in `Facts.attestations`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from regward.policy.evaluate import EvidenceStatus, Reason, Verdict
from regward.signatures.predicates import (
    COSIGN_VULN,
    SCAN_CLOCK_SKEW,
    check_scan_age,
    is_provenance,
    normalize_repository_uri,
)

if TYPE_CHECKING:
    from regward.policy.model import Authority, KeylessIdentity, Rule

logger = logging.getLogger(__name__)

MAX_LISTED_PROBLEMS = 3
"""Problems of individual statements quoted in one reason; the rest are counted."""


class AttestationReasonCode(StrEnum):
    """Reason codes of attestation checks."""

    ATTESTATION_MISSING = "attestation-missing"
    """No attestation of the predicate type exists for the image."""
    ATTESTATION_INVALID = "attestation-invalid"
    """Attestations exist, but none verifies with enough authorities or meets the conditions."""
    ATTESTATION_STALE = "attestation-stale"
    """The newest verified scan is older than maxAge, or dated in the future."""
    EVIDENCE_UNAVAILABLE = "evidence-unavailable"
    """The attestations could not be fetched; the same code signatures use, so the gate does
    not cache the decision."""
    EVIDENCE_INCOMPLETE = "evidence-incomplete"
    """The gate gathered no evidence for the requirement (a bug)."""


@dataclass(frozen=True)
class ProvenanceCondition:
    """Required SLSA provenance values; None means not checked."""

    builder_id: str | None
    """Exact `builder.id` (v0.2) or `runDetails.builder.id` (v1)."""
    source_repository: str | None
    """Source repository URI, compared after `normalize_repository_uri`."""


@dataclass(frozen=True)
class AttestationRule:
    """One entry of a rule's `attestations` section."""

    name: str
    """Name unique within the rule, used in reasons."""
    predicate_type: str
    """Required predicate type, normalised (cosign's pre-2.0 URIs gain `https://`)."""
    authorities: tuple[Authority, ...] = ()
    """Key authorities whose signed statements count."""
    keyless: tuple[KeylessIdentity, ...] = ()
    """Keyless authorities whose signed statements count."""
    count: int | None = None
    """Distinct authorities that must have signed a statement meeting the conditions; None is one."""
    allow_unsigned: bool = False
    """Whether unsigned BuildKit statements count."""
    provenance: ProvenanceCondition | None = None
    """SLSA provenance conditions."""
    max_age: timedelta | None = None
    """Maximum age of a vuln scan (from `metadata.scanFinishedOn`)."""

    @property
    def authority_names(self) -> tuple[str, ...]:
        """Names of every authority, key ones first."""
        keys = tuple(item.name for item in self.authorities)
        return keys + tuple(item.name for item in self.keyless)


@dataclass(frozen=True)
class StatementFacts:
    """The fields of one verified statement that the conditions read."""

    predicate_type: str
    """Normalised predicate type."""
    authority: str | None
    """Name of the authority that verified it; None for an unsigned statement."""
    builder_id: str | None = None
    """SLSA builder id, for provenance."""
    source_repositories: tuple[str, ...] = ()
    """Normalised source repository URIs, for provenance."""
    scan_finished: datetime | None = None
    """`metadata.scanFinishedOn`, for vuln scans."""
    problem: str | None = None
    """The reason a field the conditions need could not be read, if any."""


@dataclass(frozen=True)
class AttestationEvidence:
    """The gathered evidence for one attestation requirement on one digest."""

    name: str
    """Name of the requirement."""
    status: EvidenceStatus
    """VERIFIED when statements verified; MISSING, INVALID or ERROR otherwise."""
    statements: tuple[StatementFacts, ...] = ()
    """The verified (or accepted unsigned) statements of the type."""
    reasons: tuple[str, ...] = ()
    """Details from verification, for reason messages."""


def predicate_type_problem(rule: AttestationRule) -> str | None:
    """Return why the conditions of `rule` cannot apply to its predicate type, or None."""
    if rule.provenance is not None and not is_provenance(rule.predicate_type):
        return (
            "provenance conditions need predicateType https://slsa.dev/provenance/v1 or "
            f"https://slsa.dev/provenance/v0.2, got {rule.predicate_type!r}"
        )
    if rule.max_age is not None and rule.predicate_type != COSIGN_VULN:
        return (
            f"maxAge needs predicateType {COSIGN_VULN} (metadata.scanFinishedOn), "
            f"got {rule.predicate_type!r}"
        )
    return None


def make_provenance_condition(
    builder_id: str | None, source_repository: str | None
) -> ProvenanceCondition:
    """Build a condition with the source repository normalised for comparison."""
    return ProvenanceCondition(
        builder_id=builder_id,
        source_repository=normalize_repository_uri(source_repository)
        if source_repository is not None
        else None,
    )


def check_attestations(
    rule: Rule,
    evidence: Sequence[AttestationEvidence],
    now: datetime | None,
    digest: str,
) -> tuple[Verdict, tuple[Reason, ...], datetime | None]:
    """Check every attestation requirement of `rule`.

    Returns:
        The verdict, one reason per requirement that failed, and the moment until which an
        allowing result stays valid (the earliest scan expiry), or None when it does not expire.
    """
    by_name = {item.name: item for item in evidence}
    reasons: list[Reason] = []
    valid_until: datetime | None = None
    only_errors = True
    for requirement in rule.attestations:
        item = by_name.get(requirement.name)
        reason, expires = _check_one(requirement, item, now, digest)
        if reason is not None:
            reasons.append(reason)
            if reason.code != AttestationReasonCode.EVIDENCE_UNAVAILABLE:
                only_errors = False
        if expires is not None and (valid_until is None or expires < valid_until):
            valid_until = expires
    if not reasons:
        return Verdict.ALLOW, (), valid_until
    if only_errors and rule.on_error.value == "allow":
        return Verdict.ALLOW, tuple(reasons), None
    return Verdict.DENY, tuple(reasons), None


def _check_one(
    requirement: AttestationRule,
    item: AttestationEvidence | None,
    now: datetime | None,
    digest: str,
) -> tuple[Reason | None, datetime | None]:
    # The checks run in this order:
    # (1) evidence was gathered; (2) MISSING, INVALID and ERROR become reasons;
    # (3) statements meeting provenance and maxAge, from enough authorities, allow.
    label = f"attestation {requirement.name!r} ({requirement.predicate_type})"
    signer = _signers_text(requirement)

    # (1): a gate bug must not allow.
    if item is None:
        return Reason(
            code=AttestationReasonCode.EVIDENCE_INCOMPLETE,
            message=f"no evidence was gathered for {label}",
            fix="report this as a regward bug: the gate skipped an attestation of the rule",
        ), None

    # (2): the status from verification.
    details = "; ".join(_short(text) for text in item.reasons if text.strip())
    if item.status is EvidenceStatus.MISSING:
        return Reason(
            code=AttestationReasonCode.ATTESTATION_MISSING,
            message=f"{label} is missing for {digest}",
            fix=f"attest {digest} with predicate type {requirement.predicate_type} {signer}",
        ), None
    if item.status is EvidenceStatus.INVALID:
        return Reason(
            code=AttestationReasonCode.ATTESTATION_INVALID,
            message=f"{label} did not verify: {details or 'no statement verified'}",
            fix=f"attest {digest} again {signer}",
        ), None
    if item.status is EvidenceStatus.ERROR:
        return Reason(
            code=AttestationReasonCode.EVIDENCE_UNAVAILABLE,
            message=f"{label} could not be fetched: {details or 'fetch failed'}",
            fix="retry when the registry that stores the attestations is reachable",
        ), None

    # (3): conditions over the verified statements.
    problems: list[str] = []
    stale: list[str] = []
    accepted_signers: set[str] = set()
    unsigned_accepted = False
    expiries: list[datetime] = []
    for statement in item.statements:
        problem, expiry, is_stale = _statement_problem(requirement, statement, now)
        if problem is not None:
            (stale if is_stale else problems).append(problem)
            continue
        if expiry is not None:
            expiries.append(expiry)
        if statement.authority is None:
            unsigned_accepted = unsigned_accepted or requirement.allow_unsigned
        else:
            accepted_signers.add(statement.authority)
    needed = requirement.count if requirement.count is not None else 1
    if len(accepted_signers) >= needed or unsigned_accepted:
        return None, max(expiries) if expiries else None

    if stale and not problems:
        return Reason(
            code=AttestationReasonCode.ATTESTATION_STALE,
            message=f"{label} is too old: {_listed(stale)}",
            fix=f"scan {digest} again and attest the result {signer}",
        ), None
    if not problems and not stale:
        problems.append(
            f"signed by {len(accepted_signers)} of the authorities "
            f"{', '.join(requirement.authority_names)}, {needed} required"
        )
    return Reason(
        code=AttestationReasonCode.ATTESTATION_INVALID,
        message=f"{label} does not meet the rule: {_listed([*problems, *stale])}",
        fix=f"attest {digest} with a statement that meets the conditions {signer}",
    ), None


def _statement_problem(
    requirement: AttestationRule, statement: StatementFacts, now: datetime | None
) -> tuple[str | None, datetime | None, bool]:
    """Return (problem, expiry, is_stale) for one statement."""
    if statement.predicate_type != requirement.predicate_type:
        return f"statement has predicate type {statement.predicate_type}", None, False
    condition = requirement.provenance
    if condition is not None:
        if statement.problem is not None:
            return statement.problem, None, False
        if condition.builder_id is not None and statement.builder_id != condition.builder_id:
            return (
                f"builder id {statement.builder_id!r} is not {condition.builder_id!r}",
                None,
                False,
            )
        if (
            condition.source_repository is not None
            and condition.source_repository not in statement.source_repositories
        ):
            found = ", ".join(statement.source_repositories) or "none"
            return (
                f"source repository {found} is not {condition.source_repository}",
                None,
                False,
            )
    if requirement.max_age is not None:
        if statement.scan_finished is None:
            return statement.problem or "scan statement has no scanFinishedOn", None, False
        if now is None:
            return "no evaluation time was given to check maxAge", None, False
        problem = check_scan_age(
            statement.scan_finished, now=now, max_age=requirement.max_age, skew=SCAN_CLOCK_SKEW
        )
        if problem is not None:
            return problem, None, True
        return None, statement.scan_finished + requirement.max_age, False
    return None, None, False


def _signers_text(requirement: AttestationRule) -> str:
    names = requirement.authority_names
    if not names:
        return "(unsigned BuildKit statements are accepted)"
    return f"signed by authority {' or '.join(repr(name) for name in names)}"


def _listed(problems: Sequence[str]) -> str:
    unique = list(dict.fromkeys(problems))
    text = "; ".join(_short(problem) for problem in unique[:MAX_LISTED_PROBLEMS])
    hidden = len(unique) - MAX_LISTED_PROBLEMS
    if hidden > 0:
        text += f"; and {hidden} more"
    return text


def _short(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= 300 else one_line[:297] + "..."


__all__ = [
    "AttestationEvidence",
    "AttestationReasonCode",
    "AttestationRule",
    "ProvenanceCondition",
    "StatementFacts",
    "check_attestations",
    "make_provenance_condition",
    "predicate_type_problem",
]
