"""Gathering a rule's signature and attestation evidence for one manifest, for `Decider`.

The rule's key and keyless authorities become `regward.signatures` authorities once per rule
(key PEMs are parsed, trust roots are already loaded by the policy). Signatures come from
`check_authorities`; for an unsigned index the children are checked too, so that
`indexPolicy: self-or-children` can allow it and a denial under `self` can name the signed
children. Attestations come from `check_attestations`, and what the policy conditions need
(SLSA builder and source, scan time) is read from the verified statements here, so that
`regward.policy` stays free of statement formats.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from regward.oci.client import RegistryClient
from regward.oci.manifest import Manifest
from regward.policy.attestations import AttestationEvidence, AttestationRule, StatementFacts
from regward.policy.evaluate import AuthorityEvidence, EvidenceStatus
from regward.policy.model import Authority, KeylessIdentity, Rule, SbomSource
from regward.signatures.attestations import (
    AttestationRequirement,
    AttestationResult,
    VerifiedStatement,
)
from regward.signatures.bundles import Authority as VerifyingAuthority
from regward.signatures.cosign import KeyAuthority
from regward.signatures.fetch import EvidenceStatus as SignatureEvidenceStatus
from regward.signatures.fetch import check_authorities
from regward.signatures.fetch_attestations import check_attestations
from regward.signatures.keyless import KeylessAuthority
from regward.signatures.predicates import (
    COSIGN_VULN,
    PredicateError,
    is_provenance,
    read_provenance,
    read_scan_finished,
    sbom_format,
)

logger = logging.getLogger(__name__)

MAX_INDEX_CHILDREN_CHECKED = 64
"""An index with more children than this is not checked child by child."""

MAX_CACHED_RULES = 256
"""Rules whose converted authorities are kept; older entries are dropped after a reload."""


@dataclass(frozen=True)
class GatheredEvidence:
    """Everything `evaluate` needs about one manifest beyond its digest."""

    signatures: tuple[AuthorityEvidence, ...] = ()
    """Signature evidence for the manifest itself, one entry per authority."""
    children: tuple[tuple[str, tuple[AuthorityEvidence, ...]], ...] = ()
    """Signature evidence per child of an index that is not signed itself."""
    attestations: tuple[AttestationEvidence, ...] = ()
    """Evidence per attestation requirement."""
    signed_itself: bool = False
    """True when enough authorities verified a signature on the manifest itself."""
    now: datetime | None = None
    """When the evidence was gathered."""
    attested_sbom: VerifiedStatement | None = None
    """With `sbomSource: attested`: a verified, signed SPDX or CycloneDX statement about the
    manifest, whose predicate is the SBOM document."""


@dataclass(frozen=True)
class _RuleAuthorities:
    rule: Rule
    signatures: tuple[VerifyingAuthority, ...]
    attestations: tuple[AttestationRequirement, ...]


class EvidenceGatherer:
    """Gathers evidence for manifests with one registry client."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self._rules: dict[int, _RuleAuthorities] = {}

    async def gather(
        self, rule: Rule, repository: str, digest: str, manifest: Manifest
    ) -> GatheredEvidence:
        """Gather the signature and attestation evidence that `rule` needs for `digest`.

        Raises:
            SignatureError: the digest is invalid or the rule's authorities cannot be built.
        """
        converted = self._authorities(rule)
        now = datetime.now(UTC)
        signatures: tuple[AuthorityEvidence, ...] = ()
        children: tuple[tuple[str, tuple[AuthorityEvidence, ...]], ...] = ()
        signed_itself = False
        attestation_task = (
            asyncio.ensure_future(
                self._attestations(converted.attestations, repository, digest, manifest)
            )
            if converted.attestations
            else None
        )
        try:
            if rule.signatures is not None:
                signatures = await self._signatures(repository, digest, converted.signatures)
                needed = rule.signatures.count if rule.signatures.count is not None else 1
                verified = {
                    item.authority for item in signatures if item.status is EvidenceStatus.VERIFIED
                }
                signed_itself = len(verified) >= needed
                if (
                    manifest.is_index
                    and not signed_itself
                    and 0 < len(manifest.manifests) <= MAX_INDEX_CHILDREN_CHECKED
                ):
                    # Under self-or-children the children decide. Under self they only let
                    # the denial name the signed children.
                    child_digests = [child.digest for child in manifest.manifests]
                    results = await asyncio.gather(
                        *(
                            self._signatures(repository, child, converted.signatures)
                            for child in child_digests
                        )
                    )
                    children = tuple(zip(child_digests, results, strict=True))
            attestation_results = await attestation_task if attestation_task is not None else {}
        finally:
            if attestation_task is not None and not attestation_task.done():
                attestation_task.cancel()
        by_name = {item.name: item for item in rule.attestations}
        return GatheredEvidence(
            signatures=signatures,
            children=children,
            attestations=tuple(
                _attestation_evidence(by_name[name], result)
                for name, result in attestation_results.items()
            ),
            signed_itself=signed_itself,
            now=now,
            attested_sbom=_attested_sbom(rule, attestation_results.values()),
        )

    async def _signatures(
        self, repository: str, digest: str, authorities: Sequence[VerifyingAuthority]
    ) -> tuple[AuthorityEvidence, ...]:
        results = await check_authorities(self.client, repository, digest, authorities)
        return tuple(
            AuthorityEvidence(
                authority=name,
                status=EvidenceStatus(result.status.value),
                reasons=tuple(result.reasons),
            )
            for name, result in results.items()
        )

    async def _attestations(
        self,
        requirements: Sequence[AttestationRequirement],
        repository: str,
        digest: str,
        manifest: Manifest,
    ) -> dict[str, AttestationResult]:
        return await check_attestations(
            self.client,
            repository,
            digest,
            requirements,
            index=manifest if manifest.is_index else None,
        )

    def _authorities(self, rule: Rule) -> _RuleAuthorities:
        cached = self._rules.get(id(rule))
        if cached is not None and cached.rule is rule:
            return cached
        signatures: tuple[VerifyingAuthority, ...] = ()
        if rule.signatures is not None:
            signatures = _verifying_authorities(
                rule.signatures.authorities, rule.signatures.keyless
            )
        requirements = tuple(
            AttestationRequirement(
                name=item.name,
                predicate_type=item.predicate_type,
                authorities=_verifying_authorities(item.authorities, item.keyless),
                count=item.count,
                allow_unsigned=item.allow_unsigned,
            )
            for item in rule.attestations
        )
        if len(self._rules) >= MAX_CACHED_RULES:
            self._rules.clear()
        converted = _RuleAuthorities(rule, signatures, requirements)
        self._rules[id(rule)] = converted
        return converted


def _verifying_authorities(
    keys: Sequence[Authority], keyless: Sequence[KeylessIdentity]
) -> tuple[VerifyingAuthority, ...]:
    converted: list[VerifyingAuthority] = [
        KeyAuthority(
            name=authority.name,
            public_key_pem=authority.key_pem,
            signature_repository=authority.signature_repository,
            rekor_public_key_pem=authority.rekor_public_key_pem,
            tlog=authority.tlog,
        )
        for authority in keys
    ]
    converted.extend(
        KeylessAuthority(
            name=identity.name,
            trusted_root=identity.trusted_root,
            issuer=identity.issuer,
            issuer_regexp=identity.issuer_regexp,
            subject=identity.subject,
            subject_regexp=identity.subject_regexp,
            signature_repository=identity.signature_repository,
            ignore_sct=identity.ignore_sct,
        )
        for identity in keyless
    )
    return tuple(converted)


def _attested_sbom(rule: Rule, results: Iterable[AttestationResult]) -> VerifiedStatement | None:
    """Return the first signed SBOM statement that verified, when the rule takes attested SBOMs.

    Unsigned (BuildKit) SBOMs are never used: a foreign SBOM could hide packages.
    """
    if rule.sbom_source is not SbomSource.ATTESTED:
        return None
    for result in results:
        if result.status is not SignatureEvidenceStatus.VERIFIED:
            continue
        for statement in result.statements:
            if statement.signed and sbom_format(statement.predicate_type) is not None:
                return statement
    return None


def _attestation_evidence(rule: AttestationRule, result: AttestationResult) -> AttestationEvidence:
    return AttestationEvidence(
        name=result.name,
        status=EvidenceStatus(result.status.value),
        statements=tuple(_statement_facts(rule, item) for item in result.statements),
        reasons=result.reasons,
    )


def _statement_facts(rule: AttestationRule, verified: VerifiedStatement) -> StatementFacts:
    """Read the fields the rule's conditions need from one verified statement."""
    predicate_type = verified.predicate_type
    builder_id: str | None = None
    sources: tuple[str, ...] = ()
    finished: datetime | None = None
    problem: str | None = None
    try:
        if rule.provenance is not None and is_provenance(predicate_type):
            provenance = read_provenance(verified.statement)
            builder_id = provenance.builder_id
            sources = provenance.source_repositories
        if rule.max_age is not None and predicate_type == COSIGN_VULN:
            finished = read_scan_finished(verified.statement)
    except PredicateError as exc:
        logger.debug("statement %s: %s", verified.location, exc)
        problem = str(exc)
    return StatementFacts(
        predicate_type=predicate_type,
        authority=verified.authority,
        builder_id=builder_id,
        source_repositories=sources,
        scan_finished=finished,
        problem=problem,
    )
