"""The default `PromotionCheck`: the destination repository's policy rule, on the source's evidence.

The rule is the one `select_rule` picks for the destination repository, and the evidence
(signatures) is read where the image is now, in the source repository. The decision is the
same `evaluate()` the gate makes for a pull, so a promotion the check allows is an image the
gate would serve from the destination.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from regward.gate.decider import MAX_INDEX_CHILDREN_CHECKED
from regward.oci.client import RegistryClient
from regward.policy.evaluate import AuthorityEvidence, EvidenceStatus, Facts, evaluate
from regward.policy.match import select_rule
from regward.policy.model import IndexPolicy, Policy, Rule
from regward.promotion.interface import CheckOutcome, PromotionSubject
from regward.signatures.cosign import KeyAuthority
from regward.signatures.fetch import check_authorities

logger = logging.getLogger(__name__)


class PolicyCheck:
    """Checks a promotion against the destination's rule of a loaded policy."""

    def __init__(self, policy: Policy) -> None:
        """Create a check for `policy`."""
        self.policy = policy

    async def check(self, subject: PromotionSubject) -> CheckOutcome:
        """Evaluate the destination rule on the source image's signatures.

        A rule in mode warn or audit allows with its reasons listed, as the gate does.
        """
        rule = select_rule(self.policy, subject.destination_repository)
        signatures: tuple[AuthorityEvidence, ...] = ()
        children: tuple[tuple[str, tuple[AuthorityEvidence, ...]], ...] = ()
        manifest = subject.manifest
        if rule is not None and rule.signatures is not None:
            authorities = key_authorities(rule)
            signatures = await _evidence(
                subject.client, subject.repository, subject.digest, authorities
            )
            verified = any(item.status is EvidenceStatus.VERIFIED for item in signatures)
            if (
                manifest.is_index
                and not verified
                and rule.signatures.index_policy is IndexPolicy.SELF_OR_CHILDREN
                and 0 < len(manifest.manifests) <= MAX_INDEX_CHILDREN_CHECKED
            ):
                child_digests = [child.digest for child in manifest.manifests]
                results = await asyncio.gather(
                    *(
                        _evidence(subject.client, subject.repository, child, authorities)
                        for child in child_digests
                    )
                )
                children = tuple(zip(child_digests, results, strict=True))
        facts = Facts(
            repository=subject.destination_repository,
            digest=subject.digest,
            is_index=manifest.is_index,
            signatures=signatures,
            children=children,
        )
        decision = evaluate(self.policy, rule, facts)
        logger.debug(
            "promotion of %s@%s to %s: %s (rule %s)",
            subject.repository,
            subject.digest,
            subject.destination,
            decision.verdict,
            decision.rule,
        )
        return CheckOutcome(
            allowed=decision.allowed,
            rule=decision.rule,
            reasons=tuple(reason.message for reason in decision.reasons),
            policy_revision=decision.policy_revision,
        )


def key_authorities(rule: Rule) -> list[KeyAuthority]:
    """Return the key authorities of a rule's `signatures` section (empty without one)."""
    if rule.signatures is None:
        return []
    return [
        KeyAuthority(
            name=authority.name,
            public_key_pem=authority.key_pem,
            signature_repository=authority.signature_repository,
            rekor_public_key_pem=authority.rekor_public_key_pem,
            tlog=authority.tlog,
        )
        for authority in rule.signatures.authorities
    ]


async def _evidence(
    client: RegistryClient, repository: str, digest: str, authorities: Sequence[KeyAuthority]
) -> tuple[AuthorityEvidence, ...]:
    results = await check_authorities(client, repository, digest, authorities)
    return tuple(
        AuthorityEvidence(
            authority=name,
            status=EvidenceStatus(result.status.value),
            reasons=tuple(result.reasons),
        )
        for name, result in results.items()
    )
