"""Verification of Sigstore bundles (v0.1 to v0.3), the format cosign v3 attaches as referrers.

A bundle contains the verification material (a Fulcio certificate, or a public key hint, and one
Rekor entry, optionally RFC 3161 timestamps) and the signed content: a DSSE envelope or a message
signature over a digest. `cosign sign` and `cosign attest` both write DSSE bundles whose in-toto
statement names the image digest; a statement of type `https://sigstore.dev/cosign/sign/v1` is a
signature and any other predicate type is an attestation.

Keyless bundles are verified by `sigstore.verify.Verifier` (certificate path, SCT, inclusion
proof and checkpoint, SET, timestamps, entry consistency, signature) with this module's identity
policy. Two cases it does not cover are verified by own code with the same steps as tag-based
keyless signatures: a v0.1 bundle whose entry has an inclusion promise (SET) but no checkpointed
inclusion proof, which the bundle specification allows, and authorities that ignore SCTs.
Bundles signed with a key are always verified by own code.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, InvalidBundle
from sigstore_models.common.v1 import HashAlgorithm

from regward.oci.digest import split_digest
from regward.oci.errors import InvalidDigestError
from regward.signatures.cosign import TLOG_REQUIRED, KeyAuthority, RekorBundle, verify_set
from regward.signatures.dsse import (
    COSIGN_SIGN_PREDICATE_TYPE,
    IN_TOTO_PAYLOAD_TYPE,
    Envelope,
    Statement,
    envelope_from_json,
    parse_statement,
    peek_predicate_type,
    verify_envelope,
)
from regward.signatures.errors import SignatureVerificationError
from regward.signatures.fulcio import certificate_identity
from regward.signatures.keyless import KeylessAuthority, verify_certificate_at
from regward.signatures.keys import PublicKey, key_id
from regward.signatures.tlog import SignedMaterial, verify_entry_binding, verify_set_with_root

logger = logging.getLogger(__name__)

BUNDLE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
"""Media type of a v0.1 bundle: an inclusion promise (SET) is required, a proof is optional."""

BUNDLE_V02 = "application/vnd.dev.sigstore.bundle+json;version=0.2"
"""Media type of a v0.2 bundle: an inclusion proof with a checkpoint is required."""

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
"""Media type of a v0.3 bundle (cosign v3's default); the leaf certificate only, no chain."""

BUNDLE_V03_ALT = "application/vnd.dev.sigstore.bundle+json;version=0.3"
"""The other spelling of the v0.3 media type."""

BUNDLE_MEDIA_TYPES = frozenset({BUNDLE_V01, BUNDLE_V02, BUNDLE_V03, BUNDLE_V03_ALT})
"""Every bundle media type verified here."""

MAX_BUNDLE_SIZE = 16 * 1024 * 1024
"""Maximum size in bytes of one bundle; DSSE bundles embed the whole statement (an SBOM)."""

MESSAGE_SIGNATURE_PREDICATE = "message-signature"
"""`VerifiedBundle.predicate_type` of a message-signature bundle, which has no statement."""


class BundleContent(StrEnum):
    """Kind of content a bundle signs."""

    DSSE = "dsse-envelope"
    """A DSSE envelope around an in-toto statement."""
    MESSAGE_SIGNATURE = "message-signature"
    """A signature over a message digest, which must be the image digest."""


Authority = KeyAuthority | KeylessAuthority
"""The authorities that can verify a signature or an attestation."""


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle that verified for one authority and names the expected digest."""

    authority: str
    """Name of the authority that verified it."""
    media_type: str
    """The bundle's media type."""
    content: BundleContent
    """DSSE envelope or message signature."""
    statement: Statement | None
    """The verified in-toto statement of a DSSE bundle; None for a message signature."""
    subject: str | None
    """Keyless: the certificate's subject alternative names, comma-separated."""
    issuer: str | None
    """Keyless: the certificate's OIDC issuer."""
    key_id: str | None
    """Key-based: hex SHA-256 of the verifying key's SubjectPublicKeyInfo."""
    integrated_time: int | None
    """Unix time at which Rekor logged the entry, when the bundle records it."""
    log_index: int | None
    """Rekor log index of the entry."""

    @property
    def predicate_type(self) -> str:
        """The statement's normalized predicate type, or `MESSAGE_SIGNATURE_PREDICATE`."""
        if self.statement is None:
            return MESSAGE_SIGNATURE_PREDICATE
        return self.statement.normalized_predicate_type


@dataclass(frozen=True)
class _Parsed:
    """The fields of a bundle that own-code verification reads."""

    media_type: str
    document: dict[str, Any]
    content: BundleContent
    envelope: Envelope | None
    message_digest: str | None
    message_signature: bytes | None


def is_bundle_media_type(value: str | None) -> bool:
    """Tell whether `value` is one of the Sigstore bundle media types."""
    return value is not None and value.replace(" ", "") in BUNDLE_MEDIA_TYPES


def claimed_bundle_type(document: bytes) -> str | None:
    """Return the predicate type an unverified bundle claims, normalised, or None if unreadable.

    A message signature gives `MESSAGE_SIGNATURE_PREDICATE`. This only sorts evidence into
    kinds; it proves nothing.
    """
    try:
        parsed = _parse(document)
    except SignatureVerificationError:
        return None
    if parsed.envelope is None:
        return MESSAGE_SIGNATURE_PREDICATE
    return peek_predicate_type(parsed.envelope.payload)


def bundle_claims_signature(document: bytes, annotated_type: str | None) -> bool:
    """Tell whether an unverified bundle presents itself as an image signature.

    True for a message signature, or a DSSE statement of type
    `https://sigstore.dev/cosign/sign/v1`. `annotated_type` is the referrer manifest's
    `dev.sigstore.bundle.predicateType` annotation, normalised, and is used when present.
    This only sorts evidence into signatures and attestations; it proves nothing.
    """
    claimed = annotated_type if annotated_type is not None else claimed_bundle_type(document)
    return claimed in (COSIGN_SIGN_PREDICATE_TYPE, MESSAGE_SIGNATURE_PREDICATE)


def verify_bundle(document: bytes, subject_digest: str, authority: Authority) -> VerifiedBundle:
    """Verify a Sigstore bundle for the artifact `subject_digest` with one authority.

    Steps:
    (1) the bundle is at most `MAX_BUNDLE_SIZE` bytes of JSON with a known media type and
        exactly one of a DSSE envelope or a message signature;
    (2) the signature, certificate, transparency log entry and identity verify for the
        authority (keyless through `sigstore` or the SET path, key-based by own code);
    (3) a message signature's digest, or a subject of the DSSE statement, equals
        `subject_digest`.

    Args:
        document: the bundle JSON.
        subject_digest: the digest the bundle must be about, e.g. the image digest.
        authority: a keyless or key authority.

    Raises:
        SignatureVerificationError: a check failed; `check` names it.
    """
    # (1): shape.
    parsed = _parse(document)

    # (2): cryptographic checks.
    if isinstance(authority, KeylessAuthority):
        verified = _verify_keyless(document, parsed, subject_digest, authority)
    else:
        verified = _verify_with_key(parsed, subject_digest, authority)

    # (3): the bundle must be about this digest.
    if verified.statement is not None and not verified.statement.names_digest(subject_digest):
        names = [dict(subject.digests) for subject in verified.statement.subjects]
        raise SignatureVerificationError(
            "subject-digest",
            "bundle statement is about another artifact",
            got=json.dumps(names)[:300],
            expected=subject_digest,
        )
    logger.debug(
        "bundle (%s, %s) verified for %s by authority %s",
        parsed.media_type,
        verified.predicate_type,
        subject_digest,
        authority.name,
    )
    return verified


def _parse(document: bytes) -> _Parsed:
    if len(document) > MAX_BUNDLE_SIZE:
        raise SignatureVerificationError(
            "bundle",
            "bundle is too large",
            got=f"{len(document)} bytes",
            expected=f"at most {MAX_BUNDLE_SIZE}",
        )
    try:
        body = json.loads(document)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureVerificationError("bundle", f"bundle is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SignatureVerificationError("bundle", "bundle is not a JSON object")
    media_type = body.get("mediaType")
    if not isinstance(media_type, str) or not is_bundle_media_type(media_type):
        raise SignatureVerificationError(
            "bundle",
            "unsupported bundle media type",
            got=repr(media_type),
            expected=" or ".join(sorted(BUNDLE_MEDIA_TYPES)),
        )
    envelope_json = body.get("dsseEnvelope")
    message = body.get("messageSignature")
    if (envelope_json is None) == (message is None):
        raise SignatureVerificationError(
            "bundle", "bundle must hold exactly one of dsseEnvelope and messageSignature"
        )
    if envelope_json is not None:
        if not isinstance(envelope_json, dict):
            raise SignatureVerificationError("bundle", "bundle dsseEnvelope is not an object")
        return _Parsed(
            media_type, body, BundleContent.DSSE, envelope_from_json(envelope_json), None, None
        )
    if not isinstance(message, dict):
        raise SignatureVerificationError("bundle", "bundle messageSignature is not an object")
    digest_json = message.get("messageDigest")
    signature_text = message.get("signature")
    if not isinstance(signature_text, str):
        raise SignatureVerificationError("bundle", "bundle messageSignature has no signature")
    message_digest: str | None = None
    if isinstance(digest_json, dict):
        if digest_json.get("algorithm") != "SHA2_256" or not isinstance(
            digest_json.get("digest"), str
        ):
            raise SignatureVerificationError(
                "bundle",
                "unsupported message digest algorithm",
                got=repr(digest_json.get("algorithm")),
                expected="'SHA2_256'",
            )
        message_digest = "sha256:" + _b64(digest_json["digest"], "message digest").hex()
    return _Parsed(
        media_type,
        body,
        BundleContent.MESSAGE_SIGNATURE,
        None,
        message_digest,
        _b64(signature_text, "message signature"),
    )


def _verify_keyless(
    document: bytes, parsed: _Parsed, subject_digest: str, authority: KeylessAuthority
) -> VerifiedBundle:
    entry = _single_entry(parsed.document)
    try:
        bundle = Bundle.from_json(document)
    except InvalidBundle as exc:
        # The bundle specification requires only an inclusion promise in v0.1; sigstore-python
        # always requires a checkpointed inclusion proof.
        if parsed.media_type == BUNDLE_V01 and _has_promise(entry):
            logger.debug("v0.1 bundle without a checkpoint (%s): verifying its SET", exc)
            return _verify_keyless_set(parsed, subject_digest, authority)
        raise SignatureVerificationError("bundle", f"bundle is invalid: {exc}") from exc
    if authority.ignore_sct:
        if not _has_promise(entry):
            raise SignatureVerificationError(
                "tlog-missing",
                f"authority {authority.name!r} ignores SCTs, which is supported only for "
                "bundles with an inclusion promise",
            )
        return _verify_keyless_set(parsed, subject_digest, authority)

    policy = _IdentityPolicyAdapter(authority)
    verifier = authority.trusted_root.sigstore_verifier()
    statement: Statement | None = None
    try:
        if parsed.content is BundleContent.DSSE:
            payload_type, payload = verifier.verify_dsse(bundle, policy)
            if payload_type != IN_TOTO_PAYLOAD_TYPE:
                raise SignatureVerificationError(
                    "dsse-payload-type",
                    "bundle DSSE envelope has an unsupported payload type",
                    got=repr(payload_type),
                    expected=repr(IN_TOTO_PAYLOAD_TYPE),
                )
            statement = parse_statement(payload)
        else:
            digest_bytes = _message_digest_for(parsed, subject_digest)
            verifier.verify_artifact(
                Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest_bytes), bundle, policy
            )
    except SigstoreVerificationError as exc:
        if policy.failure is not None:
            raise policy.failure from exc
        raise SignatureVerificationError(
            "bundle",
            f"bundle does not verify with trusted root {authority.trusted_root.name}: {exc}",
        ) from exc
    except SigstoreError as exc:
        raise SignatureVerificationError("bundle", f"bundle cannot be verified: {exc}") from exc

    identity = certificate_identity(bundle.signing_certificate)
    return VerifiedBundle(
        authority=authority.name,
        media_type=parsed.media_type,
        content=parsed.content,
        statement=statement,
        subject=", ".join(identity.subjects),
        issuer=identity.issuer,
        key_id=None,
        integrated_time=_int(entry.get("integratedTime")),
        log_index=_int(entry.get("logIndex")),
    )


class _IdentityPolicyAdapter:
    """A `sigstore.verify.policy.VerificationPolicy` that applies an authority's identity.

    It keeps the regward error, whose message names the mismatch, for the caller to raise.
    """

    def __init__(self, authority: KeylessAuthority) -> None:
        self.authority = authority
        self.failure: SignatureVerificationError | None = None

    def verify(self, cert: x509.Certificate) -> None:
        try:
            self.authority.identity.check(certificate_identity(cert))
        except SignatureVerificationError as exc:
            self.failure = exc
            raise SigstoreVerificationError(str(exc)) from exc


def _verify_keyless_set(
    parsed: _Parsed, subject_digest: str, authority: KeylessAuthority
) -> VerifiedBundle:
    """Verify a keyless bundle whose Rekor entry has a SET, without sigstore's proof checks.

    Steps: (1) the leaf and chain from the verification material; (2) the SET with the trusted
    root, which gives the signing time; (3) the certificate at that time (path, usage, SCT
    unless ignored, identity); (4) the signature over the content; (5) the log entry binds the
    signature, certificate and content hash.
    """
    # (1): certificate material.
    leaf, chain = _certificates(parsed.document)

    # (2): trusted time.
    entry = _single_entry(parsed.document)
    rekor_bundle = _rekor_bundle(entry)
    moment = verify_set_with_root(rekor_bundle, authority.trusted_root)

    # (3): the certificate.
    verified = verify_certificate_at(leaf, chain, moment, authority)

    # (4) and (5): content and log entry.
    statement, material = _verify_content(parsed, subject_digest, verified.public_key, leaf)
    verify_entry_binding(rekor_bundle.body, material)
    return VerifiedBundle(
        authority=authority.name,
        media_type=parsed.media_type,
        content=parsed.content,
        statement=statement,
        subject=", ".join(verified.identity.subjects),
        issuer=verified.identity.issuer,
        key_id=None,
        integrated_time=rekor_bundle.integrated_time,
        log_index=rekor_bundle.log_index,
    )


def _verify_with_key(
    parsed: _Parsed, subject_digest: str, authority: KeyAuthority
) -> VerifiedBundle:
    """Verify a bundle signed with `authority`'s key.

    Steps: (1) the signature over the content with the authority's key; (2) when the authority
    has a Rekor key and the entry has a SET, the SET and the entry binding; with tlog "required"
    a verified entry is mandatory.
    """
    # (1): content.
    statement, material = _verify_content(parsed, subject_digest, authority.public_key, None)

    # (2): transparency log.
    entries = parsed.document.get("verificationMaterial", {}).get("tlogEntries") or []
    integrated_time: int | None = None
    log_index: int | None = None
    rekor_key = authority.rekor_public_key
    if entries and rekor_key is not None and _has_promise(entries[0]):
        rekor_bundle = _rekor_bundle(_single_entry(parsed.document))
        verify_set(rekor_bundle, rekor_key)
        verify_entry_binding(rekor_bundle.body, material)
        integrated_time = rekor_bundle.integrated_time
        log_index = rekor_bundle.log_index
    elif authority.tlog == TLOG_REQUIRED:
        raise SignatureVerificationError(
            "tlog-missing",
            f"authority {authority.name!r} requires a Rekor entry with an inclusion promise, "
            "and the bundle has none",
        )
    return VerifiedBundle(
        authority=authority.name,
        media_type=parsed.media_type,
        content=parsed.content,
        statement=statement,
        subject=None,
        issuer=None,
        key_id=key_id(authority.public_key),
        integrated_time=integrated_time,
        log_index=log_index,
    )


def _verify_content(
    parsed: _Parsed,
    subject_digest: str,
    key: PublicKey,
    certificate: x509.Certificate | None,
) -> tuple[Statement | None, SignedMaterial]:
    """Verify the DSSE envelope or message signature with `key`; return what the log must bind."""
    if parsed.envelope is not None:
        signature = verify_envelope(parsed.envelope, key)
        statement = parse_statement(parsed.envelope.payload)
        material = SignedMaterial(
            signature=signature,
            certificate=certificate,
            public_key=key,
            payload_sha256=hashlib.sha256(parsed.envelope.payload).hexdigest(),
            dsse_payload_type=parsed.envelope.payload_type,
        )
        return statement, material

    digest_bytes = _message_digest_for(parsed, subject_digest)
    assert parsed.message_signature is not None  # set for message-signature bundles by _parse
    _verify_prehashed(key, parsed.message_signature, digest_bytes)
    material = SignedMaterial(
        signature=parsed.message_signature,
        certificate=certificate,
        public_key=key,
        payload_sha256=digest_bytes.hex(),
    )
    return None, material


def _message_digest_for(parsed: _Parsed, subject_digest: str) -> bytes:
    """Return the SHA-256 the message signature must cover, which is `subject_digest`."""
    try:
        algorithm, encoded = split_digest(subject_digest)
    except InvalidDigestError as exc:
        raise SignatureVerificationError("subject-digest", f"invalid digest: {exc}") from exc
    if algorithm != "sha256":
        raise SignatureVerificationError(
            "subject-digest",
            "message-signature bundles are verified only for sha256 digests",
            got=algorithm,
            expected="sha256",
        )
    if parsed.message_digest is not None and not hmac.compare_digest(
        parsed.message_digest, subject_digest
    ):
        raise SignatureVerificationError(
            "subject-digest",
            "bundle message digest is for another artifact",
            got=parsed.message_digest,
            expected=subject_digest,
        )
    return bytes.fromhex(encoded)


def _verify_prehashed(key: PublicKey, signature: bytes, digest: bytes) -> None:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        else:
            raise SignatureVerificationError(
                "signature",
                "message signatures over a SHA-256 digest need an ECDSA or RSA key",
                got=type(key).__name__,
                expected="ECDSA or RSA",
            )
    except InvalidSignature as exc:
        raise SignatureVerificationError(
            "signature", "bundle message signature does not verify over the digest"
        ) from exc


def _certificates(document: dict[str, Any]) -> tuple[x509.Certificate, list[x509.Certificate]]:
    material = document.get("verificationMaterial")
    if not isinstance(material, dict):
        raise SignatureVerificationError("bundle", "bundle has no verificationMaterial")
    raw: list[str] = []
    certificate = material.get("certificate")
    chain = material.get("x509CertificateChain")
    if isinstance(certificate, dict) and isinstance(certificate.get("rawBytes"), str):
        raw.append(certificate["rawBytes"])
    elif isinstance(chain, dict) and isinstance(chain.get("certificates"), list):
        raw.extend(
            item["rawBytes"]
            for item in chain["certificates"]
            if isinstance(item, dict) and isinstance(item.get("rawBytes"), str)
        )
    if not raw:
        raise SignatureVerificationError("certificate", "keyless bundle has no signing certificate")
    try:
        certificates = [x509.load_der_x509_certificate(_b64(text, "certificate")) for text in raw]
    except ValueError as exc:
        raise SignatureVerificationError(
            "certificate", f"bundle certificate cannot be parsed: {exc}"
        ) from exc
    return certificates[0], certificates[1:]


def _single_entry(document: dict[str, Any]) -> dict[str, Any]:
    material = document.get("verificationMaterial")
    entries = material.get("tlogEntries") if isinstance(material, dict) else None
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        raise SignatureVerificationError(
            "tlog-missing", "bundle must hold exactly one transparency log entry"
        )
    return entries[0]


def _has_promise(entry: object) -> bool:
    if not isinstance(entry, dict):
        return False
    promise = entry.get("inclusionPromise")
    return isinstance(promise, dict) and bool(promise.get("signedEntryTimestamp"))


def _rekor_bundle(entry: dict[str, Any]) -> RekorBundle:
    """Turn a bundle's log entry into the SET form cosign's `.sig` annotation uses."""
    promise = entry.get("inclusionPromise")
    log_id = entry.get("logId")
    body = entry.get("canonicalizedBody")
    integrated_time = _int(entry.get("integratedTime"))
    log_index = _int(entry.get("logIndex"))
    if (
        not isinstance(promise, dict)
        or not isinstance(promise.get("signedEntryTimestamp"), str)
        or not isinstance(log_id, dict)
        or not isinstance(log_id.get("keyId"), str)
        or not isinstance(body, str)
        or integrated_time is None
        or log_index is None
    ):
        raise SignatureVerificationError(
            "tlog-missing",
            "bundle log entry needs inclusionPromise, logId, canonicalizedBody, integratedTime "
            "and logIndex",
        )
    return RekorBundle(
        signed_entry_timestamp=_b64(promise["signedEntryTimestamp"], "inclusion promise"),
        # The SET covers the standard base64 of the body bytes.
        body=base64.b64encode(_b64(body, "canonicalizedBody")).decode("ascii"),
        integrated_time=integrated_time,
        log_index=log_index,
        log_id=_b64(log_id["keyId"], "log id").hex(),
    )


def _int(value: object) -> int | None:
    """Read a protobuf JSON int64, which is a decimal string (or a number in older writers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureVerificationError(
            "bundle", f"bundle {what} is not valid base64: {exc}"
        ) from exc
