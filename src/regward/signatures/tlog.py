"""Rekor entries for keyless signatures: the signed entry timestamp and what the entry binds.

A signed entry timestamp (SET) proves that the log with a given id recorded an entry body at
`integratedTime`. It proves nothing about which signature that body is for, so
`verify_entry_binding` compares the body with the signature, certificate and payload at hand.
Supported entry kinds are the ones cosign and Sigstore clients write (Rekor's
`pkg/types/*`): `hashedrekord` 0.0.1 and `rekord` (x509) for signatures over a blob or digest,
`intoto` 0.0.1/0.0.2 for cosign's `.att` attestations, and `dsse` 0.0.1 for DSSE bundles.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from regward.signatures.cosign import RekorBundle, verify_set
from regward.signatures.errors import SignatureVerificationError
from regward.signatures.keys import PublicKey, describe_key, public_key_der
from regward.signatures.trust import TrustRoot

logger = logging.getLogger(__name__)

MAX_ENTRY_BODY_SIZE = 256 * 1024
"""Maximum size in bytes of a decoded Rekor entry body."""


@dataclass(frozen=True)
class SignedMaterial:
    """The material a log entry must name: the signature, the signer and the signed content."""

    signature: bytes
    """The raw signature bytes."""
    certificate: x509.Certificate | None
    """The signing certificate (keyless); None for a bare public key."""
    public_key: PublicKey
    """The signing key: the certificate's key, or the authority's key."""
    payload_sha256: str
    """Hex SHA-256 of the signed payload (the DSSE payload for envelopes)."""
    dsse_payload_type: str | None = None
    """For DSSE signatures: the envelope's payloadType."""


def verify_set_with_root(bundle: RekorBundle, trust_root: TrustRoot) -> datetime:
    """Verify a signed entry timestamp with the Rekor key of `trust_root` named by its log id.

    Steps: (1) the trusted root lists the log id; (2) the log key was valid at
    `integratedTime`; (3) the key is ECDSA, the only kind that signs SETs; (4) the SET verifies.

    Returns:
        The integrated time as an aware UTC datetime.

    Raises:
        SignatureVerificationError: unknown log, key not valid then, or a bad SET.
    """
    # (1): the log id selects the key; an unknown log is untrusted.
    log = trust_root.rekor_log(bundle.log_id)
    if log is None:
        raise SignatureVerificationError(
            "tlog-log-id",
            f"Rekor entry is from log {bundle.log_id}, which trusted root {trust_root.name} "
            "does not list",
        )

    # (2): the key must have been in service when the entry was logged.
    moment = datetime.fromtimestamp(bundle.integrated_time, UTC)
    if not log.validity.contains(moment):
        raise SignatureVerificationError(
            "tlog-log-id",
            f"Rekor entry time {moment.isoformat()} is outside the validity of log {log.url}",
        )

    # (3) and (4).
    if not isinstance(log.public_key, ec.EllipticCurvePublicKey):
        raise SignatureVerificationError(
            "tlog-set", f"log {log.url} has no ECDSA key, so it cannot have signed an SET"
        )
    verify_set(bundle, log.public_key)
    return moment


def verify_entry_binding(body_b64: str, material: SignedMaterial) -> str:
    """Check that a logged entry body names this signature, signer and payload.

    Returns:
        The entry kind, e.g. `hashedrekord`.

    Raises:
        SignatureVerificationError: malformed body, unsupported kind, or a mismatch
            (check `tlog-body`).
    """
    entry = _decode_body(body_b64)
    kind = entry.get("kind")
    version = entry.get("apiVersion")
    spec = entry.get("spec")
    if not isinstance(spec, dict):
        raise SignatureVerificationError("tlog-body", "Rekor entry has no spec object")
    if kind in ("hashedrekord", "rekord"):
        _check_hashedrekord(kind, spec, material)
    elif kind == "intoto" and version in ("0.0.1", "0.0.2"):
        _check_intoto(spec, material)
    elif kind == "dsse" and version == "0.0.1":
        _check_dsse(spec, material)
    else:
        raise SignatureVerificationError(
            "tlog-body",
            "unsupported Rekor entry kind",
            got=f"{kind!r} {version!r}",
            expected="hashedrekord, rekord, intoto 0.0.1/0.0.2 or dsse 0.0.1",
        )
    logger.debug("Rekor %s entry binds the signature, signer and payload", kind)
    return str(kind)


def _decode_body(body_b64: str) -> dict[str, Any]:
    try:
        body = base64.b64decode(body_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureVerificationError(
            "tlog-body", f"Rekor entry body is not valid base64: {exc}"
        ) from exc
    if len(body) > MAX_ENTRY_BODY_SIZE:
        raise SignatureVerificationError(
            "tlog-body",
            "Rekor entry body is too large",
            got=f"{len(body)} bytes",
            expected=f"at most {MAX_ENTRY_BODY_SIZE}",
        )
    try:
        entry = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureVerificationError(
            "tlog-body", f"Rekor entry body is not valid JSON: {exc}"
        ) from exc
    if not isinstance(entry, dict):
        raise SignatureVerificationError("tlog-body", "Rekor entry body is not a JSON object")
    return entry


def _check_hashedrekord(kind: str, spec: dict[str, Any], material: SignedMaterial) -> None:
    signature = _object(spec, "signature")
    if kind == "rekord" and signature.get("format") != "x509":
        raise SignatureVerificationError(
            "tlog-body",
            "unsupported rekord signature format",
            got=repr(signature.get("format")),
            expected="'x509'",
        )
    data_hash = _object(_object(spec, "data"), "hash")
    _check_sha256(data_hash, material.payload_sha256, "payload")
    logged_signature = _b64(_string(signature, "content"), "signature")
    if not hmac.compare_digest(logged_signature, material.signature):
        raise SignatureVerificationError(
            "tlog-body", "Rekor entry is for another signature than the one verified"
        )
    _check_signer(_b64(_string(_object(signature, "publicKey"), "content"), "key"), material)


def _check_intoto(spec: dict[str, Any], material: SignedMaterial) -> None:
    content = _object(spec, "content")
    _check_sha256(_object(content, "payloadHash"), material.payload_sha256, "DSSE payload")
    envelope = _object(content, "envelope")
    if material.dsse_payload_type is not None and envelope.get("payloadType") not in (
        None,
        material.dsse_payload_type,
    ):
        raise SignatureVerificationError(
            "tlog-body",
            "Rekor entry is for another DSSE payload type",
            got=repr(envelope.get("payloadType")),
            expected=repr(material.dsse_payload_type),
        )
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureVerificationError("tlog-body", "Rekor intoto entry lists no signatures")
    for item in signatures:
        if not isinstance(item, dict):
            continue
        sig_text = item.get("sig")
        key_text = item.get("publicKey")
        if not isinstance(sig_text, str) or not isinstance(key_text, str):
            continue
        # intoto 0.0.2 stores the envelope's base64 signature string base64-encoded once more;
        # 0.0.1 stores it once. Both forms are accepted.
        logged = _b64(sig_text, "signature")
        if not hmac.compare_digest(logged, material.signature):
            try:
                logged = base64.b64decode(logged, validate=True)
            except (binascii.Error, ValueError):
                continue
        if hmac.compare_digest(logged, material.signature):
            _check_signer(_b64(key_text, "key"), material)
            return
    raise SignatureVerificationError(
        "tlog-body", "Rekor intoto entry is for another signature than the one verified"
    )


def _check_dsse(spec: dict[str, Any], material: SignedMaterial) -> None:
    _check_sha256(_object(spec, "payloadHash"), material.payload_sha256, "DSSE payload")
    signatures = spec.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureVerificationError("tlog-body", "Rekor dsse entry lists no signatures")
    for item in signatures:
        if not isinstance(item, dict):
            continue
        sig_text = item.get("signature")
        verifier = item.get("verifier")
        if not isinstance(sig_text, str) or not isinstance(verifier, str):
            continue
        if hmac.compare_digest(_b64(sig_text, "signature"), material.signature):
            _check_signer(_b64(verifier, "verifier"), material)
            return
    raise SignatureVerificationError(
        "tlog-body", "Rekor dsse entry is for another signature than the one verified"
    )


def _check_sha256(value: dict[str, Any], expected: str, what: str) -> None:
    algorithm = value.get("algorithm")
    digest = value.get("value")
    if algorithm != "sha256" or not isinstance(digest, str):
        raise SignatureVerificationError(
            "tlog-body",
            f"Rekor entry has no SHA-256 hash of the {what}",
            got=repr(algorithm),
            expected="'sha256'",
        )
    if not hmac.compare_digest(digest.lower(), expected):
        raise SignatureVerificationError(
            "tlog-body",
            f"Rekor entry is for another {what}",
            got=f"sha256:{digest}",
            expected=f"sha256:{expected}",
        )


def _check_signer(pem: bytes, material: SignedMaterial) -> None:
    """The logged signer must be the same certificate, or the same public key."""
    if b"-----BEGIN CERTIFICATE-----" in pem:
        try:
            logged = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise SignatureVerificationError(
                "tlog-body", f"Rekor entry certificate cannot be parsed: {exc}"
            ) from exc
        if material.certificate is not None:
            if logged.public_bytes(serialization.Encoding.DER) != material.certificate.public_bytes(
                serialization.Encoding.DER
            ):
                raise SignatureVerificationError(
                    "tlog-body", "Rekor entry names another certificate than the signing one"
                )
            return
        logged_key_der = logged.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        if material.certificate is not None:
            raise SignatureVerificationError(
                "tlog-body", "Rekor entry names a public key, but the signature has a certificate"
            )
        try:
            logged_key = serialization.load_pem_public_key(pem)
        except ValueError as exc:
            raise SignatureVerificationError(
                "tlog-body", f"Rekor entry public key cannot be parsed: {exc}"
            ) from exc
        logged_key_der = logged_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if not hmac.compare_digest(logged_key_der, public_key_der(material.public_key)):
        raise SignatureVerificationError(
            "tlog-body",
            "Rekor entry names another public key",
            got="sha256:" + hashlib.sha256(logged_key_der).hexdigest(),
            expected=describe_key(material.public_key),
        )


def _object(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    if not isinstance(value, dict):
        raise SignatureVerificationError("tlog-body", f"Rekor entry lacks the object {key!r}")
    return value


def _string(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str):
        raise SignatureVerificationError("tlog-body", f"Rekor entry lacks the string {key!r}")
    return value


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureVerificationError(
            "tlog-body", f"Rekor entry {what} is not valid base64: {exc}"
        ) from exc
