"""Public key loading, raw signature checks per key type, and key ids."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa, x25519

from regward.signatures import (
    InvalidKeyError,
    SignatureVerificationError,
    generate_keypair,
    key_id,
    load_public_key,
    sign_payload,
    verify_raw,
)
from tests.conftest import asset

DATA = b'{"critical":{"type":"cosign container image signature"}}'

# RFC 8032 section 7.3, test vector "Ed25519ph": message "abc".
RFC8032_PH_PUBLIC = bytes.fromhex(
    "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf"
)
RFC8032_PH_MESSAGE = bytes.fromhex("616263")
RFC8032_PH_SIGNATURE = bytes.fromhex(
    "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
    "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
)


def _public_pem(key: object) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key  # type: ignore[attr-defined]
    return public.public_bytes(  # type: ignore[no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("kind", "expected_type"),
    [
        ("ecdsa-p256", ec.EllipticCurvePublicKey),
        ("ecdsa-p384", ec.EllipticCurvePublicKey),
        ("ecdsa-p521", ec.EllipticCurvePublicKey),
        ("rsa-2048", rsa.RSAPublicKey),
        ("ed25519", ed25519.Ed25519PublicKey),
    ],
)
def test_load_and_verify_each_kind(kind: str, expected_type: type) -> None:
    private_pem, public_pem = generate_keypair(kind)
    key = load_public_key(public_pem)
    assert isinstance(key, expected_type)

    signature = sign_payload(private_pem, DATA)
    verify_raw(key, signature, DATA)
    with pytest.raises(SignatureVerificationError, match="does not verify") as caught:
        verify_raw(key, signature, DATA + b" ")
    assert caught.value.check == "signature"


def test_load_cosign_fixture_keys() -> None:
    for name in ("cosign.pub", "cosign2.pub", "rekor.pub"):
        key = load_public_key(asset(f"cosign/{name}").read_bytes())
        assert isinstance(key, ec.EllipticCurvePublicKey)
        assert key.curve.name == "secp256r1"
    rsa_fixture = load_public_key(asset("cosign/some-rsa-key.pub").read_bytes())
    assert isinstance(rsa_fixture, rsa.RSAPublicKey)
    assert rsa_fixture.key_size == 4096


def test_key_id_is_rekor_log_id() -> None:
    # The log id in the fixture bundles is the id of rekor.pub (Rekor derives it the same way).
    key = load_public_key(asset("cosign/rekor.pub").read_bytes())
    assert key_id(key) == "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"


def test_key_id_hashes_der_spki() -> None:
    key = load_public_key(asset("cosign/cosign.pub").read_bytes())
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert key_id(key) == hashlib.sha256(der).hexdigest()
    assert len(key_id(key)) == 64


@pytest.mark.parametrize(
    ("make_key", "message"),
    [
        (lambda: ec.generate_private_key(ec.SECP224R1()), "unsupported ECDSA curve: got secp224r1"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "unsupported ECDSA curve: got secp256k1"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "got 1024 bits"),
        (lambda: dsa.generate_private_key(key_size=1024), "unsupported public key type"),
        (x25519.X25519PrivateKey.generate, "unsupported public key type"),
    ],
    ids=["p224", "secp256k1", "rsa-1024", "dsa", "x25519"],
)
def test_load_rejects_unsupported_keys(make_key: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidKeyError, match=message):
        load_public_key(_public_pem(make_key()))


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"", "missing '-----BEGIN PUBLIC KEY-----'"),
        (b"not a key", "missing '-----BEGIN PUBLIC KEY-----'"),
        (
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "cannot be parsed",
        ),
        (b"-----BEGIN PUBLIC KEY-----" + b"A" * 20000, "too large"),
    ],
)
def test_load_rejects_malformed_pem(pem: bytes, message: str) -> None:
    with pytest.raises(InvalidKeyError, match=message):
        load_public_key(pem)


def test_load_rejects_private_key_pem() -> None:
    private_pem, _ = generate_keypair("ecdsa-p256")
    with pytest.raises(InvalidKeyError, match="BEGIN PUBLIC KEY"):
        load_public_key(private_pem)


def test_ecdsa_wrong_key_fails() -> None:
    private_pem, _ = generate_keypair("ecdsa-p256")
    _, other_public = generate_keypair("ecdsa-p256")
    signature = sign_payload(private_pem, DATA)
    other = load_public_key(other_public)
    with pytest.raises(SignatureVerificationError, match=f"key sha256:{key_id(other)}"):
        verify_raw(other, signature, DATA)


def test_ecdsa_p384_requires_sha384() -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    key = load_public_key(_public_pem(private))
    verify_raw(key, private.sign(DATA, ec.ECDSA(hashes.SHA384())), DATA)
    with pytest.raises(SignatureVerificationError, match="secp384r1 sha384"):
        verify_raw(key, private.sign(DATA, ec.ECDSA(hashes.SHA256())), DATA)


def test_ecdsa_garbage_signature_fails() -> None:
    key = load_public_key(asset("cosign/cosign.pub").read_bytes())
    with pytest.raises(SignatureVerificationError):
        verify_raw(key, b"\x30\x00", DATA)
    with pytest.raises(SignatureVerificationError):
        verify_raw(key, b"", DATA)


def test_rsa_pss_accepted(rsa_key: rsa.RSAPrivateKey) -> None:
    key = load_public_key(_public_pem(rsa_key))
    for salt_length in (32, padding.PSS.MAX_LENGTH):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt_length)
        verify_raw(key, rsa_key.sign(DATA, pss, hashes.SHA256()), DATA)


def test_rsa_pkcs1v15_sha256_accepted(rsa_key: rsa.RSAPrivateKey) -> None:
    key = load_public_key(_public_pem(rsa_key))
    verify_raw(key, rsa_key.sign(DATA, padding.PKCS1v15(), hashes.SHA256()), DATA)


def test_rsa_other_hash_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    key = load_public_key(_public_pem(rsa_key))
    signature = rsa_key.sign(DATA, padding.PKCS1v15(), hashes.SHA512())
    with pytest.raises(SignatureVerificationError, match="RSA PKCS#1 v1.5 and RSA-PSS"):
        verify_raw(key, signature, DATA)


def test_ed25519ph_rfc8032_vector() -> None:
    key = ed25519.Ed25519PublicKey.from_public_bytes(RFC8032_PH_PUBLIC)
    verify_raw(key, RFC8032_PH_SIGNATURE, RFC8032_PH_MESSAGE)


def test_ed25519ph_rfc8032_vector_tampered() -> None:
    key = ed25519.Ed25519PublicKey.from_public_bytes(RFC8032_PH_PUBLIC)
    with pytest.raises(SignatureVerificationError, match="Ed25519ph and Ed25519"):
        verify_raw(key, RFC8032_PH_SIGNATURE, b"abd")
    flipped = bytes([RFC8032_PH_SIGNATURE[0] ^ 1]) + RFC8032_PH_SIGNATURE[1:]
    with pytest.raises(SignatureVerificationError):
        verify_raw(key, flipped, RFC8032_PH_MESSAGE)


def test_ed25519_pure_accepted() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    key = load_public_key(_public_pem(private))
    verify_raw(key, private.sign(DATA), DATA)


def test_ed25519_signer_uses_prehash_by_default() -> None:
    private_pem, public_pem = generate_keypair("ed25519")
    key = load_public_key(public_pem)
    assert isinstance(key, ed25519.Ed25519PublicKey)
    signature = sign_payload(private_pem, DATA)
    verify_raw(key, signature, DATA)
    # A prehash signature is not a pure Ed25519 signature over the same data.
    with pytest.raises(InvalidSignature):
        key.verify(signature, DATA)


def test_ed25519_wrong_length_signature() -> None:
    key = ed25519.Ed25519PublicKey.from_public_bytes(RFC8032_PH_PUBLIC)
    with pytest.raises(SignatureVerificationError, match="got 63 bytes, expected 64 bytes"):
        verify_raw(key, RFC8032_PH_SIGNATURE[:63], RFC8032_PH_MESSAGE)
