"""DSSE envelopes and in-toto statements, as cosign attestations and Sigstore bundles carry them.

A DSSE envelope (secure-systems-lab/dsse envelope.md) is
`{"payloadType", "payload": <base64>, "signatures": [{"keyid", "sig": <base64>}]}`. Signatures
cover the pre-authentication encoding (PAE) of the payload type and the decoded payload, never the
JSON. The payload of an attestation is an in-toto Statement (v0.1 or v1) naming its subjects by
digest and carrying a typed predicate.

Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from regward.oci.digest import split_digest
from regward.oci.errors import InvalidDigestError
from regward.signatures.errors import SignatureVerificationError
from regward.signatures.keys import PublicKey, verify_raw

logger = logging.getLogger(__name__)

DSSE_ENVELOPE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
"""Media type of a cosign `.att` layer; the blob is a DSSE envelope."""

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""The only DSSE payload type accepted for attestations (cosign rejects any other)."""

STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
"""`_type` of the in-toto Statement cosign's tag-based `attest` writes."""

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
"""`_type` of the current in-toto Statement."""

COSIGN_SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
"""Predicate type of the statement `cosign sign` wraps in a bundle: an image signature."""

PREDICATE_TYPE_ANNOTATION = "predicateType"
"""Layer annotation cosign sets on `.att` layers; untrusted, used only to classify evidence."""

MAX_ENVELOPE_SIZE = 16 * 1024 * 1024
"""Maximum size in bytes of one DSSE envelope; SPDX documents of large images reach a few MiB."""

MAX_ENVELOPE_SIGNATURES = 16
"""Maximum number of signatures read from one envelope."""

# Before cosign v2.0 the vuln and custom predicate URIs had no scheme.
_SCHEMELESS_PREFIXES = ("cosign.sigstore.dev/",)


@dataclass(frozen=True)
class Envelope:
    """A parsed DSSE envelope."""

    payload_type: str
    """The `payloadType`."""
    payload: bytes = field(repr=False)
    """The decoded payload."""
    signatures: tuple[bytes, ...]
    """The decoded signatures, in order."""

    def pae(self) -> bytes:
        """Return the bytes the signatures cover."""
        return pae(self.payload_type, self.payload)


@dataclass(frozen=True)
class Subject:
    """One subject of an in-toto statement."""

    name: str
    """The subject name; cosign writes the repository, bundles often leave it empty."""
    digests: Mapping[str, str]
    """Algorithm name to lower-case hex digest."""


@dataclass(frozen=True)
class Statement:
    """A parsed in-toto Statement (v0.1 or v1)."""

    statement_type: str
    """`_type`: `STATEMENT_V01` or `STATEMENT_V1`."""
    subjects: tuple[Subject, ...]
    """The artifacts the statement is about."""
    predicate_type: str
    """`predicateType` as written."""
    predicate: Mapping[str, Any] = field(repr=False)
    """The predicate object (empty when null)."""
    raw: bytes = field(repr=False)
    """The statement bytes exactly as signed."""

    @property
    def normalized_predicate_type(self) -> str:
        """The predicate type after `normalize_predicate_type`."""
        return normalize_predicate_type(self.predicate_type)

    def names_digest(self, digest: str) -> bool:
        """Tell whether a subject carries `digest` (`<alg>:<hex>`)."""
        try:
            algorithm, encoded = split_digest(digest)
        except InvalidDigestError:
            return False
        for subject in self.subjects:
            value = subject.digests.get(algorithm)
            if value is not None and hmac.compare_digest(value.lower(), encoded):
                return True
        return False


def pae(payload_type: str, payload: bytes) -> bytes:
    """Return the DSSE v1 pre-authentication encoding of a payload type and payload.

    `"DSSEv1" SP len(type) SP type SP len(body) SP body`, lengths as ASCII decimal byte counts.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def normalize_predicate_type(uri: str) -> str:
    """Return `uri` with `https://` added to cosign's pre-2.0 scheme-less predicate URIs.

    Before cosign v2.0 the vuln and custom predicate types were written without a scheme, e.g.
    `cosign.sigstore.dev/attestation/vuln/v1`; they mean the same as the `https://` form.
    """
    if uri.startswith(_SCHEMELESS_PREFIXES):
        return f"https://{uri}"
    return uri


def parse_envelope(data: bytes) -> Envelope:
    """Parse DSSE envelope JSON.

    Raises:
        SignatureVerificationError: too large, not JSON, or a field is missing or malformed
            (check `dsse`).
    """
    if len(data) > MAX_ENVELOPE_SIZE:
        raise SignatureVerificationError(
            "dsse",
            "DSSE envelope is too large",
            got=f"{len(data)} bytes",
            expected=f"at most {MAX_ENVELOPE_SIZE}",
        )
    document = _json_object(data, "dsse", "DSSE envelope")
    return envelope_from_json(document)


def envelope_from_json(document: Mapping[str, Any]) -> Envelope:
    """Build an `Envelope` from decoded envelope JSON (as nested in a Sigstore bundle).

    Raises:
        SignatureVerificationError: a field is missing or malformed (check `dsse`).
    """
    payload_type = document.get("payloadType")
    payload_text = document.get("payload")
    signatures = document.get("signatures")
    if not isinstance(payload_type, str) or not isinstance(payload_text, str):
        raise SignatureVerificationError(
            "dsse", "DSSE envelope needs string payloadType and payload"
        )
    if not isinstance(signatures, list) or not signatures:
        raise SignatureVerificationError("dsse", "DSSE envelope has no signatures")
    if len(signatures) > MAX_ENVELOPE_SIGNATURES:
        raise SignatureVerificationError(
            "dsse",
            "DSSE envelope has too many signatures",
            got=str(len(signatures)),
            expected=f"at most {MAX_ENVELOPE_SIGNATURES}",
        )
    decoded: list[bytes] = []
    for item in signatures:
        sig = item.get("sig") if isinstance(item, dict) else None
        if not isinstance(sig, str) or not sig:
            raise SignatureVerificationError("dsse", "DSSE signature has no sig value")
        decoded.append(_b64(sig, "signature"))
    return Envelope(payload_type, _b64(payload_text, "payload"), tuple(decoded))


def verify_envelope(envelope: Envelope, key: PublicKey) -> bytes:
    """Verify that one signature of the envelope is `key`'s signature over the PAE.

    Returns:
        The signature that verified.

    Raises:
        SignatureVerificationError: the payload type is not in-toto (`dsse-payload-type`) or no
            signature verifies (`signature`).
    """
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise SignatureVerificationError(
            "dsse-payload-type",
            "DSSE envelope has an unsupported payload type",
            got=repr(envelope.payload_type),
            expected=repr(IN_TOTO_PAYLOAD_TYPE),
        )
    encoded = envelope.pae()
    last: SignatureVerificationError | None = None
    for signature in envelope.signatures:
        try:
            verify_raw(key, signature, encoded)
        except SignatureVerificationError as exc:
            last = exc
            continue
        return signature
    assert last is not None  # parse_envelope guarantees at least one signature
    raise last


def parse_statement(payload: bytes) -> Statement:
    """Parse an in-toto Statement v0.1 or v1.

    Raises:
        SignatureVerificationError: not a statement, or subjects or types malformed
            (check `statement`).
    """
    document = _json_object(payload, "statement", "in-toto statement")
    statement_type = document.get("_type")
    if statement_type not in (STATEMENT_V01, STATEMENT_V1):
        raise SignatureVerificationError(
            "statement",
            "unsupported in-toto statement type",
            got=repr(statement_type),
            expected=f"{STATEMENT_V01!r} or {STATEMENT_V1!r}",
        )
    predicate_type = document.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise SignatureVerificationError("statement", "in-toto statement has no predicateType")
    raw_subjects = document.get("subject")
    if not isinstance(raw_subjects, list) or not raw_subjects:
        raise SignatureVerificationError("statement", "in-toto statement has no subject")
    subjects: list[Subject] = []
    for item in raw_subjects:
        if not isinstance(item, dict):
            raise SignatureVerificationError("statement", "in-toto subject is not an object")
        name = item.get("name", "")
        digests = item.get("digest")
        if not isinstance(name, str) or not isinstance(digests, dict):
            raise SignatureVerificationError(
                "statement", "in-toto subject needs a string name and a digest object"
            )
        if not all(isinstance(value, str) for value in digests.values()):
            raise SignatureVerificationError("statement", "in-toto subject digests must be strings")
        subjects.append(Subject(name, MappingProxyType(dict(digests))))
    predicate = document.get("predicate")
    if predicate is None:
        predicate = {}
    if not isinstance(predicate, dict):
        raise SignatureVerificationError("statement", "in-toto predicate is not an object")
    return Statement(
        statement_type=str(statement_type),
        subjects=tuple(subjects),
        predicate_type=predicate_type,
        predicate=MappingProxyType(predicate),
        raw=payload,
    )


def peek_predicate_type(payload: bytes) -> str | None:
    """Return the normalized predicateType of an unverified statement, or None.

    For classifying evidence only (an attestation of the type exists but does not verify);
    never for trusting it.
    """
    try:
        return normalize_predicate_type(parse_statement(payload).predicate_type)
    except SignatureVerificationError:
        return None


def _json_object(data: bytes, check: str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data, object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureVerificationError(check, f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SignatureVerificationError(check, f"{what} is not a JSON object")
    return document


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers of the same signed bytes must not see different claims.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        # DSSE allows URL-safe base64 too.
        try:
            return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise SignatureVerificationError(
                "dsse", f"DSSE {what} is not valid base64: {exc}"
            ) from exc
