"""Verification of cosign's tag-based (`.sig`) image signatures with a public key.

This module is the pure core: it takes a signature layer that the caller has already fetched (the
payload bytes, the layer annotations and the layer digest) and checks it against one
`KeyAuthority`. It does no network or disk I/O; `regward.signatures.fetch` does the fetching.

Format (cosign specs/SIGNATURE_SPEC.md): the signature manifest of an image
`sha256:<hex>` is tagged `sha256-<hex>.sig`. Each layer of it is one signature. The layer blob is a
simple-signing JSON payload naming the image digest, and the layer annotations hold the base64
signature over the exact blob bytes and, optionally, a Rekor bundle (a signed entry timestamp).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from regward.oci.digest import compute_digest, split_digest
from regward.oci.errors import InvalidDigestError
from regward.signatures.errors import (
    InvalidAuthorityError,
    InvalidKeyError,
    SignatureError,
    SignatureVerificationError,
)
from regward.signatures.keys import (
    PublicKey,
    describe_key,
    key_id,
    load_public_key,
    public_key_der,
    verify_raw,
)

logger = logging.getLogger(__name__)

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
"""Media type of a cosign signature layer; the blob is the simple-signing payload."""

COSIGN_SIGNATURE_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
"""Artifact type cosign gives a signature manifest pushed as an OCI 1.1 referrer."""

COSIGN_SIGNATURE_TYPE = "cosign container image signature"
"""The only accepted value of `critical.type` in a simple-signing payload."""

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
"""Layer annotation holding the base64 signature over the payload bytes."""

BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
"""Layer annotation holding the Rekor bundle: a signed entry timestamp and the log entry."""

CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
"""Layer annotation holding the signing certificate (keyless or certificate-based signing)."""

CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
"""Layer annotation holding the PEM intermediates and root of the signing certificate."""

RFC3161_TIMESTAMP_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"
"""Layer annotation holding an RFC 3161 timestamp over the signature bytes."""

MAX_PAYLOAD_SIZE = 256 * 1024
"""Maximum size in bytes of a simple-signing payload; the test fixtures' payloads are 250-660."""

MAX_SIGNATURE_ANNOTATION_SIZE = 8 * 1024
"""Maximum length of the base64 signature annotation; a 16384-bit RSA signature needs 2,732."""

MAX_BUNDLE_ANNOTATION_SIZE = 64 * 1024
"""Maximum length of the Rekor bundle annotation; the keyless test fixture's bundle is 2,416."""

TLOG_OPTIONAL = "optional"
"""`KeyAuthority.tlog` value: a Rekor bundle is verified when present and a key is configured."""

TLOG_REQUIRED = "required"
"""`KeyAuthority.tlog` value: every accepted signature needs a verified Rekor bundle."""

_ACCESSORY_TAG_PATTERN = re.compile(r"sha256-[0-9a-f]{64}(\.(sig|att|sbom))?")
_CRITICAL_FIELDS = frozenset({"identity", "image", "type"})


@dataclass(frozen=True)
class KeyAuthority:
    """A trusted cosign public key, with where its signatures live and how Rekor is used.

    Raises:
        InvalidKeyError: a key is not a usable PEM public key, or the Rekor key is not ECDSA.
        InvalidAuthorityError: `tlog` is unknown, or is "required" without a Rekor key.
    """

    name: str
    """Name used in results and messages, e.g. `ci`."""
    public_key_pem: bytes
    """PEM SubjectPublicKeyInfo of the signing key."""
    signature_repository: str | None = None
    """Repository holding the `.sig` tags (cosign's COSIGN_REPOSITORY): `repo` on the image's
    registry or `host/repo` on another one. None means the image's own repository."""
    rekor_public_key_pem: bytes | None = None
    """PEM ECDSA public key of the Rekor log whose signed entry timestamps are trusted."""
    tlog: str = TLOG_OPTIONAL
    """`optional`: check a Rekor bundle when present; `required`: a verified bundle is mandatory."""
    public_key: PublicKey = field(init=False, repr=False, compare=False)
    """The loaded signing key."""
    rekor_public_key: ec.EllipticCurvePublicKey | None = field(
        init=False, repr=False, compare=False
    )
    """The loaded Rekor key, when one is configured."""

    def __post_init__(self) -> None:
        """Load and check both keys and the tlog mode."""
        if self.tlog not in (TLOG_OPTIONAL, TLOG_REQUIRED):
            raise InvalidAuthorityError(
                f"authority {self.name!r} has an unknown tlog mode: got {self.tlog!r}, "
                f"expected {TLOG_OPTIONAL!r} or {TLOG_REQUIRED!r}"
            )
        if self.tlog == TLOG_REQUIRED and self.rekor_public_key_pem is None:
            raise InvalidAuthorityError(
                f"authority {self.name!r} requires a transparency log entry but has no Rekor "
                "public key: set rekor_public_key_pem or use tlog 'optional'"
            )
        try:
            key = load_public_key(self.public_key_pem)
        except InvalidKeyError as exc:
            raise InvalidKeyError(f"authority {self.name!r}: {exc}") from exc
        object.__setattr__(self, "public_key", key)

        rekor_key: ec.EllipticCurvePublicKey | None = None
        if self.rekor_public_key_pem is not None:
            try:
                loaded = load_public_key(self.rekor_public_key_pem)
            except InvalidKeyError as exc:
                raise InvalidKeyError(f"authority {self.name!r}, Rekor key: {exc}") from exc
            # Signed entry timestamps are ECDSA signatures (cosign's VerifySET accepts only
            # an ECDSA Rekor key), so any other key type is a configuration error.
            if not isinstance(loaded, ec.EllipticCurvePublicKey):
                raise InvalidKeyError(
                    f"authority {self.name!r}: Rekor public key must be ECDSA, "
                    f"got {type(loaded).__name__}"
                )
            rekor_key = loaded
        object.__setattr__(self, "rekor_public_key", rekor_key)


@dataclass(frozen=True)
class SignatureLayer:
    """One layer of a cosign signature manifest, with its blob already downloaded."""

    payload: bytes
    """The layer blob: the simple-signing JSON payload, byte for byte."""
    annotations: Mapping[str, str]
    """The layer descriptor's annotations."""
    layer_digest: str
    """The layer descriptor's digest, e.g. `sha256:<hex>`."""


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature layer that passed every check for one authority."""

    authority: str
    """Name of the authority whose key verified the signature."""
    image_digest: str
    """The image manifest digest named by the payload."""
    docker_reference: str
    """`critical.identity.docker-reference` from the payload: the repository the signer named."""
    payload: bytes
    """The verified payload bytes."""
    optional: Mapping[str, object]
    """The payload's `optional` object (cosign's `-a key=value` annotations); empty when null."""
    tlog_verified: bool
    """True when a Rekor bundle was verified against the authority's Rekor key."""
    layer_digest: str
    """Digest of the signature layer."""
    key_id: str = ""
    """Hex SHA-256 of the verifying key's DER SubjectPublicKeyInfo."""
    integrated_time: int | None = None
    """Unix time at which Rekor logged the signature, when `tlog_verified`."""
    log_index: int | None = None
    """Rekor log index of the entry, when `tlog_verified`."""
    subject: str | None = None
    """For keyless signatures: the certificate's subject alternative names, comma-separated."""
    issuer: str | None = None
    """For keyless signatures: the certificate's OIDC issuer."""


@dataclass(frozen=True)
class RekorBundle:
    """The parsed `dev.sigstore.cosign/bundle` annotation.

    `SignedEntryTimestamp` is the log's signature over the canonical JSON of the other four fields.
    """

    signed_entry_timestamp: bytes
    """DER ECDSA signature by the Rekor key."""
    body: str
    """Base64 of the Rekor entry JSON, as logged."""
    integrated_time: int
    """Unix time at which the entry was logged."""
    log_index: int
    """Index of the entry in the log."""
    log_id: str
    """Hex SHA-256 of the log's DER public key."""


def signature_tag(digest: str, suffix: str = "sig") -> str:
    """Return cosign's attachment tag for an image digest.

    `sha256:<hex>` becomes `sha256-<hex>.<suffix>`; an empty suffix gives `sha256-<hex>`, the
    OCI referrers fallback tag.

    Raises:
        SignatureError: `digest` is not a valid sha256 or sha512 digest.
    """
    try:
        algorithm, encoded = split_digest(digest)
    except InvalidDigestError as exc:
        raise SignatureError(f"cannot build a signature tag: {exc}") from exc
    tag = f"{algorithm}-{encoded}"
    return f"{tag}.{suffix}" if suffix else tag


def is_accessory_tag(tag: str) -> bool:
    """Return True for `sha256-<64 hex>`, optionally followed by `.sig`, `.att` or `.sbom`.

    These are the tags cosign writes for signatures, attestations and SBOMs, and the OCI
    referrers fallback tag.
    """
    return _ACCESSORY_TAG_PATTERN.fullmatch(tag) is not None


def verify_layer(
    layer: SignatureLayer, image_digest: str, authority: KeyAuthority
) -> VerifiedSignature:
    """Verify one cosign signature layer for `image_digest` with `authority`'s key.

    Steps, in order (format from cosign specs/SIGNATURE_SPEC.md):
    (1) the payload is at most `MAX_PAYLOAD_SIZE` bytes and hashes to the layer digest;
    (2) the signature annotation is present and is valid base64;
    (3) the signature verifies over the exact payload bytes with the authority's key;
    (4) the payload is simple-signing JSON of type "cosign container image signature" whose
        `docker-manifest-digest` equals `image_digest`;
    (5) a Rekor bundle, when present and a Rekor key is configured, has a valid signed entry
        timestamp and an entry binding this signature, key and payload hash; with
        `tlog == "required"` a verified bundle is mandatory.

    Raises:
        SignatureVerificationError: a check failed; `check` names it.
    """
    # (1): the annotations describe this layer only if the blob is the layer the manifest names.
    layer_payload_digest(layer)

    # (2): the signature is base64 in an annotation; `.att` layers carry an empty one.
    signature = _decode_signature_annotation(layer)

    # (3): cosign signs the payload blob itself, not a hash of the manifest.
    verify_raw(authority.public_key, signature, layer.payload)

    # (4): only now is the payload trusted enough to read.
    docker_reference, signed_digest, optional = _parse_simple_signing(layer.payload)
    if signed_digest != image_digest:
        raise SignatureVerificationError(
            "image-digest",
            "signature is for another image: docker-manifest-digest does not match",
            got=signed_digest,
            expected=image_digest,
        )

    # (5): Rekor bundle.
    bundle = _check_transparency_log(layer, authority, signature)

    logger.debug(
        "signature layer %s verified for %s by authority %s (tlog %s)",
        layer.layer_digest,
        image_digest,
        authority.name,
        bundle is not None,
    )
    return VerifiedSignature(
        authority=authority.name,
        image_digest=signed_digest,
        docker_reference=docker_reference,
        payload=layer.payload,
        optional=optional,
        tlog_verified=bundle is not None,
        layer_digest=layer.layer_digest,
        key_id=key_id(authority.public_key),
        integrated_time=bundle.integrated_time if bundle is not None else None,
        log_index=bundle.log_index if bundle is not None else None,
    )


def layer_payload_digest(layer: SignatureLayer, max_size: int = MAX_PAYLOAD_SIZE) -> str:
    """Check that a layer blob is at most `max_size` bytes and hashes to its layer digest.

    Returns:
        The layer digest.

    Raises:
        SignatureVerificationError: the blob is too large (`payload-size`) or its digest differs
            (`layer-digest`).
    """
    if len(layer.payload) > max_size:
        raise SignatureVerificationError(
            "payload-size",
            "signature payload is too large",
            got=f"{len(layer.payload)} bytes",
            expected=f"at most {max_size} bytes",
        )
    payload_digest = _digest_of(layer.payload, layer.layer_digest)
    if not hmac.compare_digest(payload_digest, layer.layer_digest):
        raise SignatureVerificationError(
            "layer-digest",
            "signature payload does not match its layer digest",
            got=payload_digest,
            expected=layer.layer_digest,
        )
    return layer.layer_digest


def decode_signature_annotation(layer: SignatureLayer) -> bytes:
    """Return the decoded `dev.cosignproject.cosign/signature` annotation of a layer.

    Raises:
        SignatureVerificationError: the annotation is missing, empty, too large or not base64.
    """
    return _decode_signature_annotation(layer)


def parse_simple_signing(payload: bytes) -> tuple[str, str, Mapping[str, object]]:
    """Return (docker-reference, docker-manifest-digest, optional) of a simple-signing payload.

    Raises:
        SignatureVerificationError: not a cosign container image signature payload.
    """
    return _parse_simple_signing(payload)


def parse_rekor_bundle(text: str) -> RekorBundle:
    """Parse the `dev.sigstore.cosign/bundle` annotation.

    Raises:
        SignatureVerificationError: too large, not JSON, or a field is missing or mistyped.
    """
    if len(text) > MAX_BUNDLE_ANNOTATION_SIZE:
        raise SignatureVerificationError(
            "bundle",
            "Rekor bundle annotation is too large",
            got=f"{len(text)} characters",
            expected=f"at most {MAX_BUNDLE_ANNOTATION_SIZE}",
        )
    document = _load_json_object(text, "bundle", "Rekor bundle")
    set_text = document.get("SignedEntryTimestamp")
    payload = document.get("Payload")
    if not isinstance(set_text, str) or not isinstance(payload, dict):
        raise SignatureVerificationError(
            "bundle", "Rekor bundle needs a string SignedEntryTimestamp and a Payload object"
        )
    body = payload.get("body")
    integrated_time = payload.get("integratedTime")
    log_index = payload.get("logIndex")
    log_id = payload.get("logID")
    if (
        not isinstance(body, str)
        or not isinstance(integrated_time, int)
        or isinstance(integrated_time, bool)
        or not isinstance(log_index, int)
        or isinstance(log_index, bool)
        or not isinstance(log_id, str)
    ):
        raise SignatureVerificationError(
            "bundle",
            "Rekor bundle Payload needs body (string), integratedTime (integer), "
            "logIndex (integer) and logID (string)",
        )
    return RekorBundle(
        signed_entry_timestamp=_b64decode(set_text, "bundle", "SignedEntryTimestamp"),
        body=body,
        integrated_time=integrated_time,
        log_index=log_index,
        log_id=log_id,
    )


def verify_set(bundle: RekorBundle, rekor_key: ec.EllipticCurvePublicKey) -> None:
    """Verify the signed entry timestamp of a Rekor bundle with the log's public key.

    The log signs SHA-256 of the RFC 8785 canonical JSON of `{body, integratedTime, logID,
    logIndex}` with ECDSA (cosign `VerifySET`). The bundle's logID must be the id of `rekor_key`.

    Raises:
        SignatureVerificationError: the log id differs or the signature does not verify.
    """
    expected_log_id = key_id(rekor_key)
    if not hmac.compare_digest(bundle.log_id.lower(), expected_log_id):
        raise SignatureVerificationError(
            "tlog-log-id",
            "Rekor bundle is from another log",
            got=bundle.log_id,
            expected=expected_log_id,
        )
    signed: dict[str, str | int] = {
        "body": bundle.body,
        "integratedTime": bundle.integrated_time,
        "logIndex": bundle.log_index,
        "logID": bundle.log_id,
    }
    try:
        canonical = rfc8785.dumps(signed)
    except rfc8785.CanonicalizationError as exc:
        raise SignatureVerificationError(
            "tlog-set", f"Rekor bundle Payload cannot be canonicalized: {exc}"
        ) from exc
    try:
        rekor_key.verify(bundle.signed_entry_timestamp, canonical, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignatureVerificationError(
            "tlog-set",
            f"Rekor signed entry timestamp does not verify with log key sha256:{expected_log_id}",
        ) from exc


def verify_rekor_body(
    bundle: RekorBundle, *, signature: bytes, public_key: PublicKey, payload: bytes
) -> None:
    """Check that the logged hashedrekord (or rekord) entry is for this signature, key and payload.

    A valid signed entry timestamp proves only that the log recorded *some* entry, so the entry
    must name the same signature bytes, the same public key (or a certificate for it) and
    SHA-256 of the payload.

    Raises:
        SignatureVerificationError: the body is malformed or names something else.
    """
    body_bytes = _b64decode(bundle.body, "tlog-body", "Rekor entry body")
    entry = _load_json_object(body_bytes, "tlog-body", "Rekor entry body")
    kind = entry.get("kind")
    if kind not in ("hashedrekord", "rekord"):
        raise SignatureVerificationError(
            "tlog-body",
            "unsupported Rekor entry kind",
            got=repr(kind),
            expected="'hashedrekord' or 'rekord'",
        )
    spec = _object_at(entry, ("spec",))
    # Early cosign releases logged `rekord` entries. With an x509 key and a data hash they have
    # the same fields as `hashedrekord`; other rekord formats (pgp, minisign, ssh) are not cosign's.
    signature_format = _object_at(spec, ("signature",)).get("format")
    if kind == "rekord" and signature_format != "x509":
        raise SignatureVerificationError(
            "tlog-body",
            "unsupported rekord signature format",
            got=repr(signature_format),
            expected="'x509'",
        )
    algorithm = _object_at(spec, ("data", "hash")).get("algorithm")
    hash_value = _object_at(spec, ("data", "hash")).get("value")
    signature_content = _object_at(spec, ("signature",)).get("content")
    key_content = _object_at(spec, ("signature", "publicKey")).get("content")
    if not isinstance(hash_value, str) or not isinstance(signature_content, str):
        raise SignatureVerificationError(
            "tlog-body", "Rekor entry lacks spec.data.hash.value or spec.signature.content"
        )
    if not isinstance(key_content, str):
        raise SignatureVerificationError(
            "tlog-body", "Rekor entry lacks spec.signature.publicKey.content"
        )

    if algorithm != "sha256":
        raise SignatureVerificationError(
            "tlog-body",
            "unsupported Rekor entry hash algorithm",
            got=repr(algorithm),
            expected="'sha256'",
        )
    payload_hash = hashlib.sha256(payload).hexdigest()
    if not hmac.compare_digest(hash_value.lower(), payload_hash):
        raise SignatureVerificationError(
            "tlog-body",
            "Rekor entry is for another payload",
            got=f"sha256:{hash_value}",
            expected=f"sha256:{payload_hash}",
        )

    logged_signature = _b64decode(signature_content, "tlog-body", "Rekor entry signature")
    if not hmac.compare_digest(logged_signature, signature):
        raise SignatureVerificationError(
            "tlog-body", "Rekor entry is for another signature than the layer annotation"
        )

    logged_key = _logged_public_key(_b64decode(key_content, "tlog-body", "Rekor entry public key"))
    if not hmac.compare_digest(public_key_der(logged_key), public_key_der(public_key)):
        raise SignatureVerificationError(
            "tlog-body",
            "Rekor entry names another public key",
            got=describe_key(logged_key),
            expected=describe_key(public_key),
        )


def _check_transparency_log(
    layer: SignatureLayer, authority: KeyAuthority, signature: bytes
) -> RekorBundle | None:
    """Run step (5) of `verify_layer`; return the verified bundle, or None if none was checked."""
    bundle_text = layer.annotations.get(BUNDLE_ANNOTATION)
    rekor_key = authority.rekor_public_key
    if bundle_text is None or rekor_key is None:
        if authority.tlog == TLOG_REQUIRED:
            raise SignatureVerificationError(
                "tlog-missing",
                f"authority {authority.name!r} requires a Rekor bundle, but the layer has no "
                f"{BUNDLE_ANNOTATION} annotation",
            )
        if bundle_text is not None:
            logger.debug(
                "layer %s has a Rekor bundle, but authority %s has no Rekor key: not checked",
                layer.layer_digest,
                authority.name,
            )
        return None
    bundle = parse_rekor_bundle(bundle_text)
    verify_set(bundle, rekor_key)
    verify_rekor_body(
        bundle, signature=signature, public_key=authority.public_key, payload=layer.payload
    )
    return bundle


def _digest_of(data: bytes, like: str) -> str:
    """Hash `data` with the algorithm of the digest `like` (sha256 or sha512)."""
    try:
        algorithm, _ = split_digest(like)
    except InvalidDigestError as exc:
        raise SignatureVerificationError(
            "layer-digest", f"signature layer has an invalid digest: {exc}"
        ) from exc
    return compute_digest(data, algorithm)


def _decode_signature_annotation(layer: SignatureLayer) -> bytes:
    text = layer.annotations.get(SIGNATURE_ANNOTATION)
    if text is None:
        raise SignatureVerificationError(
            "signature-annotation", f"signature layer has no {SIGNATURE_ANNOTATION} annotation"
        )
    if not text:
        raise SignatureVerificationError(
            "signature-annotation", f"{SIGNATURE_ANNOTATION} annotation is empty"
        )
    if len(text) > MAX_SIGNATURE_ANNOTATION_SIZE:
        raise SignatureVerificationError(
            "signature-annotation",
            f"{SIGNATURE_ANNOTATION} annotation is too large",
            got=f"{len(text)} characters",
            expected=f"at most {MAX_SIGNATURE_ANNOTATION_SIZE}",
        )
    return _b64decode(text, "signature-annotation", f"{SIGNATURE_ANNOTATION} annotation")


def _parse_simple_signing(payload: bytes) -> tuple[str, str, Mapping[str, object]]:
    """Return (docker-reference, docker-manifest-digest, optional) from a simple-signing payload."""
    document = _load_json_object(payload, "payload", "signature payload")
    critical = document.get("critical")
    if not isinstance(critical, dict):
        raise SignatureVerificationError("payload", "signature payload has no critical object")
    # cosign writes exactly these three fields. A "critical" field this verifier does not know
    # could carry a restriction it would silently drop, so the payload is rejected instead.
    unknown = sorted(set(critical) - _CRITICAL_FIELDS)
    if unknown:
        raise SignatureVerificationError(
            "payload", f"signature payload has unknown critical fields: {', '.join(unknown)}"
        )

    signature_type = critical.get("type")
    if signature_type != COSIGN_SIGNATURE_TYPE:
        raise SignatureVerificationError(
            "payload-type",
            "signature payload has the wrong critical.type",
            got=repr(signature_type),
            expected=repr(COSIGN_SIGNATURE_TYPE),
        )
    signed_digest = _object_at(critical, ("image",)).get("docker-manifest-digest")
    if not isinstance(signed_digest, str):
        raise SignatureVerificationError(
            "payload", "signature payload lacks critical.image.docker-manifest-digest"
        )
    docker_reference = _object_at(critical, ("identity",)).get("docker-reference")
    if not isinstance(docker_reference, str):
        raise SignatureVerificationError(
            "payload", "signature payload lacks critical.identity.docker-reference"
        )

    optional = document.get("optional")
    if optional is None:
        optional = {}
    if not isinstance(optional, dict):
        raise SignatureVerificationError(
            "payload", "signature payload optional field is neither an object nor null"
        )
    return docker_reference, signed_digest, optional


def _logged_public_key(pem: bytes) -> PublicKey:
    """Load the key of a hashedrekord entry: a PEM public key or a PEM certificate."""
    if b"-----BEGIN CERTIFICATE-----" in pem:
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise SignatureVerificationError(
                "tlog-body", f"Rekor entry certificate cannot be parsed: {exc}"
            ) from exc
        pem = certificate.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    try:
        return load_public_key(pem)
    except InvalidKeyError as exc:
        raise SignatureVerificationError(
            "tlog-body", f"Rekor entry public key is unusable: {exc}"
        ) from exc


def _load_json_object(data: bytes | str, check: str, what: str) -> dict[str, Any]:
    """Parse JSON (bytes must be UTF-8) that must be an object, rejecting duplicate keys.

    Duplicate keys are rejected because parsers disagree on which value wins, so two readers of
    the same signed bytes could see different claims.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        document = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SignatureVerificationError(check, f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SignatureVerificationError(
            check, f"{what} is not a JSON object", got=type(document).__name__, expected="object"
        )
    return document


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _object_at(document: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """Return the object at `path`, or an empty dict when a step is missing or not an object."""
    current: Any = document
    for name in path:
        current = current.get(name) if isinstance(current, dict) else None
    return current if isinstance(current, dict) else {}


def _b64decode(text: str, check: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureVerificationError(check, f"{what} is not valid base64: {exc}") from exc
