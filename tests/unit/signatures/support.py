"""Readers for the containers/image cosign fixtures and builders for test-made Rekor bundles."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from regward.signatures import SignatureLayer
from tests.conftest import asset

SIGSTORE_JSON_PREFIX = b"\x00sigstore-json\n"
"""Prefix of a containers/image `signature-N` file; JSON follows it."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fixture_bytes(relative: str) -> bytes:
    return asset(f"cosign/{relative}").read_bytes()


def read_signature_file(path: Path) -> tuple[str, bytes, dict[str, str]]:
    """Return (mimeType, decoded payload, annotations) of a containers/image signature file."""
    raw = path.read_bytes()
    assert raw.startswith(SIGSTORE_JSON_PREFIX), f"{path} is not a sigstore-json signature"
    document = json.loads(raw[len(SIGSTORE_JSON_PREFIX) :])
    return document["mimeType"], base64.b64decode(document["payload"]), document["annotations"]


def fixture_layer(relative: str) -> SignatureLayer:
    """Return the signature file as the `.sig` layer cosign would have pushed."""
    _, payload, annotations = read_signature_file(asset(f"cosign/{relative}"))
    return SignatureLayer(payload, annotations, sha256_digest(payload))


def image_digest(image_dir: str) -> str:
    return sha256_digest(fixture_bytes(f"{image_dir}/manifest.json"))


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hashedrekord_body(
    payload: bytes, signature: bytes, signer_public_pem: bytes, *, kind: str = "hashedrekord"
) -> str:
    """Return base64 of a Rekor entry of `kind` for this payload, signature and key."""
    entry: dict[str, Any] = {
        "apiVersion": "0.0.1",
        "kind": kind,
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": base64.b64encode(signer_public_pem).decode()},
            },
        },
    }
    if kind == "rekord":
        entry["spec"]["signature"]["format"] = "x509"
    return base64.b64encode(json.dumps(entry).encode()).decode()


def make_bundle(
    rekor_key: ec.EllipticCurvePrivateKey,
    body: str,
    *,
    integrated_time: int = 1700000000,
    log_index: int = 42,
    log_id: str | None = None,
) -> str:
    """Return a `dev.sigstore.cosign/bundle` annotation signed by a test Rekor key."""
    if log_id is None:
        der = rekor_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        log_id = hashlib.sha256(der).hexdigest()
    payload: dict[str, Any] = {
        "body": body,
        "integratedTime": integrated_time,
        "logIndex": log_index,
        "logID": log_id,
    }
    signed = rekor_key.sign(rfc8785.dumps(payload), ec.ECDSA(hashes.SHA256()))
    return json.dumps(
        {"SignedEntryTimestamp": base64.b64encode(signed).decode(), "Payload": payload}
    )
