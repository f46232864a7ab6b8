"""Attestations: cosign `.att` DSSE layers, Sigstore bundle statements and BuildKit statements.

`verify_attestation_layer` checks one layer of a `sha256-<hex>.att` manifest against one
authority: the layer blob is a DSSE envelope (`application/vnd.dsse.envelope.v1+json`) whose
payload is an in-toto statement, signed over the DSSE PAE with a key or a Fulcio certificate
(the `.att` layer carries the same certificate, chain and Rekor bundle annotations as a `.sig`
layer, and an empty signature annotation). `assess_attestations` turns the verified statements
and the evidence found into one `AttestationResult` per requirement.

Pure: no I/O. `regward.signatures.fetch_attestations` reads the registry.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from regward.signatures.artifacts import FoundBundle, FoundEvidence
from regward.signatures.bundles import (
    Authority,
    VerifiedBundle,
    claimed_bundle_type,
    verify_bundle,
)
from regward.signatures.cosign import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    TLOG_REQUIRED,
    KeyAuthority,
    SignatureLayer,
    layer_payload_digest,
    parse_rekor_bundle,
    verify_set,
)
from regward.signatures.dsse import (
    COSIGN_SIGN_PREDICATE_TYPE,
    MAX_ENVELOPE_SIZE,
    PREDICATE_TYPE_ANNOTATION,
    Statement,
    normalize_predicate_type,
    parse_envelope,
    parse_statement,
    peek_predicate_type,
    verify_envelope,
)
from regward.signatures.errors import InvalidAuthorityError, SignatureVerificationError
from regward.signatures.fetch import EvidenceStatus
from regward.signatures.fulcio import load_certificate, load_chain
from regward.signatures.keyless import verify_certificate_at
from regward.signatures.keys import key_id
from regward.signatures.tlog import SignedMaterial, verify_entry_binding, verify_set_with_root

logger = logging.getLogger(__name__)


class AttestationSource(StrEnum):
    """Kind of artifact a statement came from."""

    COSIGN_ATT = "cosign-att"
    """A layer of cosign's `sha256-<hex>.att` manifest (or an in-toto referrer)."""
    BUNDLE = "sigstore-bundle"
    """A Sigstore bundle attached as an OCI referrer."""
    BUILDKIT = "buildkit"
    """A BuildKit attestation manifest inside an image index; never signed."""


@dataclass(frozen=True)
class VerifiedStatement:
    """An in-toto statement about the image, with who signed it."""

    statement: Statement
    """The statement; its subjects include the checked digest."""
    source: AttestationSource
    """Kind of artifact it came from."""
    location: str
    """Digest of the layer or manifest that carried it."""
    authority: str | None = None
    """Name of the authority whose signature verified; None for an unsigned statement."""
    subject: str | None = None
    """Keyless: the certificate's subject alternative names."""
    issuer: str | None = None
    """Keyless: the certificate's OIDC issuer."""
    key_id: str | None = None
    """Key-based: hex SHA-256 of the verifying key."""
    integrated_time: int | None = None
    """Unix time at which Rekor logged the signature, when verified."""

    @property
    def signed(self) -> bool:
        """True when an authority's signature verified."""
        return self.authority is not None

    @property
    def predicate_type(self) -> str:
        """The statement's normalized predicate type."""
        return self.statement.normalized_predicate_type


@dataclass(frozen=True)
class AttestationRequirement:
    """An attestation an image must have: a predicate type signed by enough authorities.

    Raises:
        InvalidAuthorityError: authority names repeat, or `count` is out of range.
    """

    name: str
    """Name of the requirement, used in results and reasons, e.g. `sbom`."""
    predicate_type: str
    """The required predicate type; compared after `normalize_predicate_type`."""
    authorities: tuple[Authority, ...]
    """Authorities whose signed statements count."""
    count: int | None = None
    """How many distinct authorities must have signed a statement; None means one."""
    allow_unsigned: bool = False
    """Whether an unsigned BuildKit statement of the type satisfies the requirement."""
    normalized_type: str = field(init=False, repr=False, compare=False)
    """`predicate_type` after normalisation."""

    def __post_init__(self) -> None:
        """Check names and count, and normalise the predicate type."""
        names = [authority.name for authority in self.authorities]
        if len(set(names)) != len(names):
            raise InvalidAuthorityError(
                f"attestation {self.name!r}: authority names must be unique, got {names}"
            )
        if self.count is not None and not 1 <= self.count <= len(self.authorities):
            raise InvalidAuthorityError(
                f"attestation {self.name!r}: count must be between 1 and the number of "
                f"authorities ({len(self.authorities)}), got {self.count}"
            )
        if not self.authorities and not self.allow_unsigned:
            raise InvalidAuthorityError(
                f"attestation {self.name!r} lists no authorities and does not allow unsigned "
                "statements, so nothing could satisfy it"
            )
        object.__setattr__(self, "normalized_type", normalize_predicate_type(self.predicate_type))

    @property
    def required_count(self) -> int:
        """Number of authorities that must have verified a statement."""
        return self.count if self.count is not None else 1


@dataclass(frozen=True)
class AttestationResult:
    """The outcome of one attestation requirement on one digest."""

    name: str
    """Name of the requirement."""
    status: EvidenceStatus
    """VERIFIED, MISSING (no attestation of the type), INVALID (found, none verified) or ERROR."""
    statements: tuple[VerifiedStatement, ...]
    """Statements of the required type that verified (or unsigned ones when allowed)."""
    reasons: tuple[str, ...]
    """Explanations of the status, most important first."""
    authorities: tuple[str, ...] = ()
    """Names of the authorities that verified at least one statement."""


def verify_attestation_layer(
    layer: SignatureLayer, image_digest: str, authority: Authority
) -> VerifiedStatement:
    """Verify one `.att` DSSE layer for `image_digest` with one authority.

    Steps, in order:
    (1) the blob is at most `MAX_ENVELOPE_SIZE` bytes and hashes to the layer digest;
    (2) it is a DSSE envelope with payload type `application/vnd.in-toto+json`;
    (3) key authority: an envelope signature verifies over the PAE with the key, then a Rekor
        bundle is checked as for `.sig` layers (`tlog: required` makes it mandatory);
        keyless authority: the Rekor SET verifies with the trusted root, the certificate was
        valid then, chains to Fulcio, has an SCT and the identity, an envelope signature
        verifies with its key, and the log entry binds signature, certificate and payload;
    (4) the payload is an in-toto statement with a subject carrying `image_digest`.

    Raises:
        SignatureVerificationError: a check failed; `check` names it.
    """
    # (1): the blob is the layer the manifest names.
    layer_payload_digest(layer, MAX_ENVELOPE_SIZE)

    # (2): envelope.
    envelope = parse_envelope(layer.payload)

    # (3): signature and log.
    payload_sha256 = hashlib.sha256(envelope.payload).hexdigest()
    subject: str | None = None
    issuer: str | None = None
    verified_key_id: str | None = None
    integrated_time: int | None = None
    bundle_text = layer.annotations.get(BUNDLE_ANNOTATION)
    if isinstance(authority, KeyAuthority):
        signature = verify_envelope(envelope, authority.public_key)
        verified_key_id = key_id(authority.public_key)
        if bundle_text and authority.rekor_public_key is not None:
            rekor = parse_rekor_bundle(bundle_text)
            verify_set(rekor, authority.rekor_public_key)
            verify_entry_binding(
                rekor.body,
                SignedMaterial(
                    signature=signature,
                    certificate=None,
                    public_key=authority.public_key,
                    payload_sha256=payload_sha256,
                    dsse_payload_type=envelope.payload_type,
                ),
            )
            integrated_time = rekor.integrated_time
        elif authority.tlog == TLOG_REQUIRED:
            raise SignatureVerificationError(
                "tlog-missing",
                f"authority {authority.name!r} requires a Rekor bundle, but the attestation "
                f"layer has no verifiable {BUNDLE_ANNOTATION} annotation",
            )
    else:
        certificate_pem = layer.annotations.get(CERTIFICATE_ANNOTATION)
        if not certificate_pem:
            raise SignatureVerificationError(
                "certificate", f"attestation layer has no {CERTIFICATE_ANNOTATION} annotation"
            )
        if not bundle_text:
            raise SignatureVerificationError(
                "tlog-missing",
                f"keyless attestation layer has no {BUNDLE_ANNOTATION} annotation, so there is "
                "no trusted signing time",
            )
        leaf = load_certificate(certificate_pem, "certificate annotation")
        chain = load_chain(layer.annotations.get(CHAIN_ANNOTATION))
        rekor = parse_rekor_bundle(bundle_text)
        moment = verify_set_with_root(rekor, authority.trusted_root)
        verified = verify_certificate_at(leaf, chain, moment, authority)
        signature = verify_envelope(envelope, verified.public_key)
        verify_entry_binding(
            rekor.body,
            SignedMaterial(
                signature=signature,
                certificate=leaf,
                public_key=verified.public_key,
                payload_sha256=payload_sha256,
                dsse_payload_type=envelope.payload_type,
            ),
        )
        subject = ", ".join(verified.identity.subjects)
        issuer = verified.identity.issuer
        integrated_time = rekor.integrated_time

    # (4): the statement must be about this image.
    statement = parse_statement(envelope.payload)
    check_statement_subject(statement, image_digest)
    return VerifiedStatement(
        statement=statement,
        source=AttestationSource.COSIGN_ATT,
        location=layer.layer_digest,
        authority=authority.name,
        subject=subject,
        issuer=issuer,
        key_id=verified_key_id,
        integrated_time=integrated_time,
    )


def check_statement_subject(statement: Statement, digest: str) -> None:
    """Check that a subject of `statement` carries `digest`.

    Raises:
        SignatureVerificationError: no subject has the digest (check `subject-digest`).
    """
    if statement.names_digest(digest):
        return
    found = sorted(
        f"{algorithm}:{value}"
        for subject in statement.subjects
        for algorithm, value in subject.digests.items()
    )
    raise SignatureVerificationError(
        "subject-digest",
        "attestation is about another artifact: no subject carries the image digest",
        got=", ".join(found)[:300] or "no digests",
        expected=digest,
    )


def claimed_predicate_type(layer: SignatureLayer) -> str | None:
    """Return the predicate type an unverified `.att` layer claims, normalised, or None.

    Read from the `predicateType` annotation, else from the unverified payload. For classifying
    evidence as "present but invalid" only.
    """
    annotated = layer.annotations.get(PREDICATE_TYPE_ANNOTATION)
    if annotated:
        return normalize_predicate_type(annotated)
    try:
        envelope = parse_envelope(layer.payload)
    except SignatureVerificationError:
        return None
    return peek_predicate_type(envelope.payload)


def assess_attestations(
    found: FoundEvidence, digest: str, requirements: Sequence[AttestationRequirement]
) -> dict[str, AttestationResult]:
    """Verify the evidence found for `digest` and decide each requirement.

    Each layer and bundle is verified at most once per authority, even when several
    requirements share the authority.

    Returns:
        A result per requirement name, in the order given.
    """
    cache = _VerificationCache(digest)
    return {
        requirement.name: _assess_one(found, digest, requirement, cache)
        for requirement in requirements
    }


class _VerificationCache:
    """Verification outcomes per (evidence digest, authority object)."""

    def __init__(self, digest: str) -> None:
        self.digest = digest
        self.layers: dict[tuple[str, int], VerifiedStatement | str] = {}
        self.bundles: dict[tuple[str, int], VerifiedBundle | str] = {}

    def layer(self, layer: SignatureLayer, authority: Authority) -> VerifiedStatement | str:
        key = (layer.layer_digest, id(authority))
        if key not in self.layers:
            try:
                self.layers[key] = verify_attestation_layer(layer, self.digest, authority)
            except SignatureVerificationError as exc:
                logger.debug(
                    "attestation layer %s rejected for authority %s: %s",
                    layer.layer_digest,
                    authority.name,
                    exc,
                )
                self.layers[key] = str(exc)
        return self.layers[key]

    def bundle(self, bundle: FoundBundle, authority: Authority) -> VerifiedBundle | str:
        key = (bundle.manifest_digest, id(authority))
        if key not in self.bundles:
            try:
                self.bundles[key] = verify_bundle(bundle.document, self.digest, authority)
            except SignatureVerificationError as exc:
                logger.debug(
                    "bundle %s rejected for authority %s: %s",
                    bundle.manifest_digest,
                    authority.name,
                    exc,
                )
                self.bundles[key] = str(exc)
        return self.bundles[key]


def bundle_statement(verified: VerifiedBundle, location: str) -> VerifiedStatement | None:
    """Return a verified DSSE bundle's statement as an attestation, or None for a signature."""
    statement = verified.statement
    if statement is None or statement.normalized_predicate_type == COSIGN_SIGN_PREDICATE_TYPE:
        return None
    return VerifiedStatement(
        statement=statement,
        source=AttestationSource.BUNDLE,
        location=location,
        authority=verified.authority,
        subject=verified.subject,
        issuer=verified.issuer,
        key_id=verified.key_id,
        integrated_time=verified.integrated_time,
    )


def _assess_one(
    found: FoundEvidence,
    digest: str,
    requirement: AttestationRequirement,
    cache: _VerificationCache,
) -> AttestationResult:
    # The checks run in this order:
    # (1) signed statements of the type from `.att` layers and bundles, per authority;
    # (2) enough distinct authorities signed: VERIFIED;
    # (3) unsigned BuildKit statements, only with allowUnsigned, covering every platform;
    # (4) fetch errors: ERROR; nothing of the type found: MISSING; otherwise INVALID.
    wanted = requirement.normalized_type
    statements: list[VerifiedStatement] = []
    failures: list[str] = []
    claimed = False

    # (1): the untrusted predicate type claims only skip evidence of other types early.
    for layer in found.att_layers:
        claim = claimed_predicate_type(layer)
        if claim is not None and claim != wanted:
            continue
        claimed = claimed or claim == wanted
        for authority in requirement.authorities:
            outcome = cache.layer(layer, authority)
            if isinstance(outcome, str):
                failures.append(
                    f"authority {authority.name!r}: {outcome} (layer {layer.layer_digest})"
                )
            elif outcome.predicate_type == wanted:
                statements.append(outcome)
                claimed = True
    for bundle in found.bundles:
        claim = bundle.predicate_type or claimed_bundle_type(bundle.document)
        if claim is not None and claim != wanted:
            continue
        claimed = claimed or claim == wanted
        for authority in requirement.authorities:
            verified = cache.bundle(bundle, authority)
            if isinstance(verified, str):
                failures.append(
                    f"authority {authority.name!r}: {verified} (bundle {bundle.manifest_digest})"
                )
                continue
            statement = bundle_statement(verified, bundle.manifest_digest)
            if statement is not None and statement.predicate_type == wanted:
                statements.append(statement)
                claimed = True

    # (2): enough signers.
    signers = tuple(dict.fromkeys(item.authority for item in statements if item.authority))
    if len(signers) >= requirement.required_count:
        reasons = tuple(
            f"{requirement.name}: {item.predicate_type} statement verified by authority "
            f"{item.authority!r} ({item.source} {item.location})"
            for item in statements
        )
        return AttestationResult(
            requirement.name, EvidenceStatus.VERIFIED, tuple(statements), reasons, signers
        )

    # (3): unsigned statements.
    unsigned = [
        item for item in found.buildkit if item.statement.normalized_predicate_type == wanted
    ]
    claimed = claimed or bool(unsigned)
    if requirement.allow_unsigned and unsigned:
        covered = {item.attached_to for item in unsigned}
        needed = set(found.buildkit_children) or {digest}
        if needed <= covered:
            accepted = tuple(
                VerifiedStatement(item.statement, AttestationSource.BUILDKIT, item.manifest_digest)
                for item in unsigned
            )
            return AttestationResult(
                requirement.name,
                EvidenceStatus.VERIFIED,
                (*statements, *accepted),
                (
                    f"{requirement.name}: unsigned BuildKit {wanted} statement accepted (allowUnsigned)",
                ),
                signers,
            )
        failures.append(
            "unsigned BuildKit statements do not cover platform manifests "
            + ", ".join(sorted(needed - covered))
        )
    elif unsigned:
        failures.append(
            f"{len(unsigned)} unsigned BuildKit {wanted} statement(s) found, but allowUnsigned "
            "is not set"
        )

    # (4): classify the failure.
    if signers:
        failures.insert(
            0,
            f"signed by {len(signers)} authorit{'y' if len(signers) == 1 else 'ies'} "
            f"({', '.join(signers)}), {requirement.required_count} required",
        )
    if found.fetch_errors:
        summary = f"could not read all attestations of {digest}: " + "; ".join(found.fetch_errors)
        return AttestationResult(
            requirement.name, EvidenceStatus.ERROR, tuple(statements), (summary, *failures), signers
        )
    if not claimed and not signers:
        return AttestationResult(
            requirement.name,
            EvidenceStatus.MISSING,
            (),
            (f"no {wanted} attestation found for {digest}",),
        )
    details = "; ".join([*failures, *found.unusable]) or "no statement verified"
    return AttestationResult(
        requirement.name,
        EvidenceStatus.INVALID,
        tuple(statements),
        (f"no {wanted} attestation verified for {requirement.name!r}: {details}",),
        signers,
    )
