"""The cosign-compatible signer: key generation, payload bytes, signatures and manifests."""

from __future__ import annotations

import json

import pytest

from regward.signatures import (
    KEY_KINDS,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
    InvalidKeyError,
    SignatureError,
    generate_keypair,
    load_public_key,
    make_payload,
    sign_payload,
    verify_raw,
)
from regward.signatures.sign import build_signature_manifest, signature_layer_descriptor
from tests.conftest import asset
from tests.unit.signatures.support import read_signature_file, sha256_digest

VALID_DIGEST = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"


def test_payload_matches_cosign_bytes() -> None:
    # The payload cosign wrote for dir-img-cosign-valid, byte for byte.
    _, expected, _ = read_signature_file(asset("cosign/dir-img-cosign-valid/signature-1"))
    payload = make_payload("192.168.64.2:5000/cosign-signed-single-sample", VALID_DIGEST)
    assert payload == expected


def test_payload_optional_sorted_and_escaped() -> None:
    payload = make_payload("r/app", VALID_DIGEST, {"z": "1", "a": "<b>&"})
    assert payload.endswith(b'"optional":{"a":"\\u003cb\\u003e\\u0026","z":"1"}}')
    assert json.loads(payload)["optional"] == {"a": "<b>&", "z": "1"}


def test_payload_empty_optional_is_null() -> None:
    assert make_payload("r/app", VALID_DIGEST, {}).endswith(b',"optional":null}')


@pytest.mark.parametrize("digest", ["latest", "sha256:ABC", "", "md5:" + "0" * 32])
def test_payload_rejects_bad_digest(digest: str) -> None:
    with pytest.raises(SignatureError, match="cannot build a signature payload"):
        make_payload("r/app", digest)


def test_generate_keypair_pem_forms() -> None:
    private_pem, public_pem = generate_keypair()
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert load_public_key(public_pem).curve.name == "secp256r1"  # type: ignore[union-attr]


def test_generate_keypair_unknown_kind() -> None:
    with pytest.raises(SignatureError, match="unknown key kind: got 'dsa'"):
        generate_keypair("dsa")


def test_key_kinds_listed() -> None:
    assert KEY_KINDS[0] == "ecdsa-p256"
    assert "ed25519" in KEY_KINDS


def test_sign_payload_rejects_bad_key() -> None:
    with pytest.raises(InvalidKeyError, match="private key cannot be loaded"):
        sign_payload(b"not a key", b"data")


def test_sign_payload_pure_ed25519() -> None:
    private_pem, public_pem = generate_keypair("ed25519")
    signature = sign_payload(private_pem, b"data", ed25519ph=False)
    verify_raw(load_public_key(public_pem), signature, b"data")


def test_signature_manifest_shape() -> None:
    private_pem, _ = generate_keypair()
    payload = make_payload("r/app", VALID_DIGEST)
    first = signature_layer_descriptor(payload, sign_payload(private_pem, payload))
    second = signature_layer_descriptor(payload, sign_payload(private_pem, payload))

    manifest_bytes, config = build_signature_manifest([first, second])
    manifest = json.loads(manifest_bytes)

    assert first["digest"] == sha256_digest(payload)
    assert first["size"] == len(payload)
    assert first["mediaType"] == SIMPLE_SIGNING_MEDIA_TYPE
    assert set(first["annotations"]) == {SIGNATURE_ANNOTATION}
    assert manifest["config"]["digest"] == sha256_digest(config)
    assert manifest["config"]["size"] == len(config)
    assert manifest["layers"] == [first, second]
    assert json.loads(config)["rootfs"]["diff_ids"] == [first["digest"], second["digest"]]
