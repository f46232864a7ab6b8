"""Public keys for cosign key-based verification: loading, raw signature checks and key ids.

cosign public keys are PEM `PUBLIC KEY` blocks holding a PKIX SubjectPublicKeyInfo. The signature
scheme is not recorded next to the signature, so `verify_raw` picks it from the key type, as cosign
does: ECDSA with the curve's hash, RSA PKCS#1 v1.5 then RSA-PSS with SHA-256, and Ed25519ph then
pure Ed25519.
"""

from __future__ import annotations

import hashlib
import logging

import nacl.bindings
import nacl.exceptions
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from regward.signatures.errors import InvalidKeyError, SignatureVerificationError

logger = logging.getLogger(__name__)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
"""The public key types cosign key-based signing uses."""

MAX_PEM_SIZE = 16 * 1024
"""Maximum size in bytes of a PEM public key; a 16384-bit RSA key is about 2.9 KiB."""

MIN_RSA_BITS = 2048
"""Smallest RSA modulus accepted; shorter keys are considered breakable."""

MAX_RSA_BITS = 16384
"""Largest RSA modulus accepted, so that a hostile key cannot make verification slow."""

ED25519_SIGNATURE_SIZE = 64

CURVE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}
"""ECDSA curves cosign supports and the hash each one signs with (sigstore's algorithm registry)."""


def load_public_key(pem: bytes) -> PublicKey:
    """Load a PEM SubjectPublicKeyInfo public key and check that cosign can use it.

    Args:
        pem: a `-----BEGIN PUBLIC KEY-----` block.

    Returns:
        An ECDSA (P-256, P-384, P-521), RSA (2048 to 16384 bits) or Ed25519 public key.

    Raises:
        InvalidKeyError: the input is not a PEM public key, or uses another algorithm or size.
    """
    if len(pem) > MAX_PEM_SIZE:
        raise InvalidKeyError(
            f"public key PEM is too large: got {len(pem)} bytes, expected at most {MAX_PEM_SIZE}"
        )
    if b"-----BEGIN PUBLIC KEY-----" not in pem:
        raise InvalidKeyError(
            "public key is not a PEM SubjectPublicKeyInfo: missing '-----BEGIN PUBLIC KEY-----'"
        )
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidKeyError(f"public key PEM cannot be parsed: {exc}") from exc

    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in CURVE_HASHES:
            raise InvalidKeyError(
                f"unsupported ECDSA curve: got {key.curve.name}, "
                "expected secp256r1, secp384r1 or secp521r1"
            )
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise InvalidKeyError(
                f"unsupported RSA key size: got {key.key_size} bits, "
                f"expected {MIN_RSA_BITS} to {MAX_RSA_BITS}"
            )
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise InvalidKeyError(
        f"unsupported public key type: got {type(key).__name__}, expected ECDSA, RSA or Ed25519"
    )


def public_key_der(key: PublicKey) -> bytes:
    """Return the DER encoding of the key's SubjectPublicKeyInfo."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: PublicKey) -> str:
    """Return the lower-case hex SHA-256 of the key's DER SubjectPublicKeyInfo.

    This is also how a Rekor log id is derived from the log's public key.
    """
    return hashlib.sha256(public_key_der(key)).hexdigest()


def describe_key(key: PublicKey) -> str:
    """Return `sha256:<key id>` for messages."""
    return f"sha256:{key_id(key)}"


def verify_raw(key: PublicKey, signature: bytes, data: bytes) -> None:
    """Verify `signature` over the exact bytes `data` with `key`.

    Schemes per key type, as sigstore's signer registry defines them:
    - ECDSA: an ASN.1 DER signature over SHA-256 (P-256), SHA-384 (P-384) or SHA-512 (P-521);
    - RSA: PKCS#1 v1.5 with SHA-256, then RSA-PSS with SHA-256 and any salt length;
    - Ed25519: Ed25519ph (RFC 8032, SHA-512 prehash), then pure Ed25519.

    Raises:
        SignatureVerificationError: no scheme for this key type accepts the signature.
    """
    if isinstance(key, ec.EllipticCurvePublicKey):
        _verify_ecdsa(key, signature, data)
    elif isinstance(key, rsa.RSAPublicKey):
        _verify_rsa(key, signature, data)
    else:
        _verify_ed25519(key, signature, data)


def _failed(key: PublicKey, scheme: str) -> SignatureVerificationError:
    return SignatureVerificationError(
        "signature", f"signature does not verify with key {describe_key(key)} ({scheme})"
    )


def _verify_ecdsa(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> None:
    hash_type = CURVE_HASHES.get(key.curve.name)
    if hash_type is None:
        raise _failed(key, f"unsupported curve {key.curve.name}")
    try:
        key.verify(signature, data, ec.ECDSA(hash_type()))
    except InvalidSignature as exc:
        raise _failed(key, f"ECDSA {key.curve.name} {hash_type.name}") from exc


def _verify_rsa(key: rsa.RSAPublicKey, signature: bytes, data: bytes) -> None:
    try:
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        logger.debug("RSA PKCS#1 v1.5 check failed, trying RSA-PSS", exc_info=True)
    else:
        return
    # sigstore's PSS verifier accepts any salt length, so AUTO recovers it from the signature.
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    try:
        key.verify(signature, data, pss, hashes.SHA256())
    except InvalidSignature as exc:
        raise _failed(key, "RSA PKCS#1 v1.5 and RSA-PSS, SHA-256") from exc


def _verify_ed25519(key: ed25519.Ed25519PublicKey, signature: bytes, data: bytes) -> None:
    if len(signature) != ED25519_SIGNATURE_SIZE:
        raise SignatureVerificationError(
            "signature",
            f"signature does not verify with key {describe_key(key)} (Ed25519): wrong length",
            got=f"{len(signature)} bytes",
            expected=f"{ED25519_SIGNATURE_SIZE} bytes",
        )
    raw_key = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    # cosign signs with Ed25519ph by default because Rekor's hashedrekord type accepts only that
    # form (cosign pkg/cosign/keys.go, GetDefaultLoadOptions), so it is tried first.
    # `cryptography` has no Ed25519ph. PyNaCl exposes libsodium's, which checks the RFC 8032
    # section 7.3 test vector (tests/unit/signatures/test_keys.py).
    state = nacl.bindings.crypto_sign_ed25519ph_state()
    nacl.bindings.crypto_sign_ed25519ph_update(state, data)
    try:
        nacl.bindings.crypto_sign_ed25519ph_final_verify(state, signature, raw_key)
    except nacl.exceptions.BadSignatureError:
        logger.debug("Ed25519ph check failed, trying pure Ed25519", exc_info=True)
    else:
        return

    # Older cosign releases signed with pure Ed25519 when no transparency log was used.
    try:
        key.verify(signature, data)
    except InvalidSignature as exc:
        raise _failed(key, "Ed25519ph and Ed25519") from exc
