"""The real keyless cosign signature from containers/image, checked against MANIFEST.json.

The signature was made by public-good Sigstore in January 2023. containers/image trusts the
Fulcio root `fulcio_v1.crt.pem` and `rekor.pub` and skips the SCT; regward verifies it with the
public-good trusted root shipped in the `sigstore` package (SCT included) and with a
trusted_root.json built from those two files.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from regward.signatures import (
    KeylessAuthority,
    SignatureLayer,
    SignatureVerificationError,
    TrustRoot,
    verify_keyless_layer,
)
from tests.conftest import asset
from tests.unit.signatures.support import (
    fixture_bytes,
    fixture_layer,
    image_digest,
)

IMAGE = "dir-img-cosign-fulcio-rekor-valid"
KEYLESS_CASES: list[dict[str, Any]] = [
    case
    for case in json.loads(fixture_bytes("MANIFEST.json"))["cases"]
    if "fulcio_ca" in case.get("trust", {})
]


def containers_image_root(directory: Path, rekor_key: str) -> TrustRoot:
    """A trusted_root.json with containers/image's Fulcio CA and `rekor_key`, no CT log."""
    root = x509.load_pem_x509_certificate(fixture_bytes("fulcio_v1.crt.pem"))
    rekor = serialization.load_pem_public_key(fixture_bytes(rekor_key))
    rekor_der = rekor.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    document = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [
            {
                "baseUrl": "https://rekor.example",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": base64.b64encode(rekor_der).decode(),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": "2021-01-01T00:00:00Z"},
                },
                "logId": {"keyId": base64.b64encode(hashlib.sha256(rekor_der).digest()).decode()},
            }
        ],
        "certificateAuthorities": [
            {
                "subject": {"organization": "sigstore.dev", "commonName": "sigstore"},
                "uri": "https://fulcio.example",
                "certChain": {
                    "certificates": [
                        {
                            "rawBytes": base64.b64encode(
                                root.public_bytes(serialization.Encoding.DER)
                            ).decode()
                        }
                    ]
                },
                "validFor": {"start": "2021-10-07T00:00:00Z"},
            }
        ],
        "ctlogs": [],
    }
    path = directory / "trusted_root.json"
    path.write_text(json.dumps(document))
    return TrustRoot.load(path)


def layer() -> SignatureLayer:
    return fixture_layer(f"{IMAGE}/signature-1")


@pytest.mark.parametrize(
    "case", KEYLESS_CASES, ids=lambda case: f"{case['expected']}-{case['trust']['subject_email']}"
)
def test_manifest_case_with_containers_image_trust(case: dict[str, Any], tmp_path: Path) -> None:
    trust = case["trust"]
    root = containers_image_root(tmp_path, trust["rekor_public_keys"][0])
    authority = KeylessAuthority(
        "fulcio",
        root,
        issuer=trust["oidc_issuer"],
        subject=trust["subject_email"],
        ignore_sct=True,
    )

    if case["expected"] == "accept":
        verified = verify_keyless_layer(layer(), image_digest(IMAGE), authority)
        assert verified.subject == trust["subject_email"]
        return
    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(layer(), image_digest(IMAGE), authority)
    if "Rekor" in case["reason"]:
        assert caught.value.check == "tlog-log-id"
    else:
        assert caught.value.check == "identity"


def test_public_good_root_verifies_with_sct() -> None:
    authority = KeylessAuthority(
        "fulcio",
        TrustRoot.public_good(),
        issuer="https://github.com/login/oauth",
        subject="mitr@redhat.com",
    )

    verified = verify_keyless_layer(layer(), image_digest(IMAGE), authority)

    assert verified.issuer == "https://github.com/login/oauth"
    assert verified.subject == "mitr@redhat.com"
    assert verified.integrated_time == 1674247893
    assert verified.docker_reference == "192.168.64.2:5000/cosign-signed/fulcio-rekor-1"


def test_public_good_wrong_subject_rejected() -> None:
    authority = KeylessAuthority(
        "fulcio",
        TrustRoot.public_good(),
        issuer="https://github.com/login/oauth",
        subject="this-does-not-match@example.com",
    )

    with pytest.raises(SignatureVerificationError, match="subject does not match") as caught:
        verify_keyless_layer(layer(), image_digest(IMAGE), authority)
    assert caught.value.check == "identity"


def test_public_good_wrong_issuer_rejected() -> None:
    authority = KeylessAuthority(
        "fulcio",
        TrustRoot.public_good(),
        issuer="https://accounts.google.com",
        subject="mitr@redhat.com",
    )

    with pytest.raises(SignatureVerificationError, match="issuer does not match"):
        verify_keyless_layer(layer(), image_digest(IMAGE), authority)


def test_subject_prefix_pattern_must_match_whole_value() -> None:
    # cosign's unanchored match would accept "mitr@red" for mitr@redhat.com.
    authority = KeylessAuthority(
        "fulcio",
        TrustRoot.public_good(),
        issuer="https://github.com/login/oauth",
        subject_regexp="mitr@red",
    )

    with pytest.raises(SignatureVerificationError, match="whole value"):
        verify_keyless_layer(layer(), image_digest(IMAGE), authority)


def test_staging_root_rejects_public_good_signature() -> None:
    authority = KeylessAuthority(
        "fulcio",
        TrustRoot.staging(),
        issuer="https://github.com/login/oauth",
        subject="mitr@redhat.com",
    )

    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(layer(), image_digest(IMAGE), authority)
    assert caught.value.check == "tlog-log-id"


def test_root_without_ct_log_needs_ignore_sct(tmp_path: Path) -> None:
    root = containers_image_root(tmp_path, "rekor.pub")
    authority = KeylessAuthority(
        "fulcio", root, issuer="https://github.com/login/oauth", subject="mitr@redhat.com"
    )

    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(layer(), image_digest(IMAGE), authority)
    assert caught.value.check == "sct"


def test_chain_annotation_supplies_the_intermediate(tmp_path: Path) -> None:
    # The trusted root holds only the Fulcio root, so the path needs the chain annotation.
    root = containers_image_root(tmp_path, "rekor.pub")
    authority = KeylessAuthority(
        "fulcio",
        root,
        issuer="https://github.com/login/oauth",
        subject="mitr@redhat.com",
        ignore_sct=True,
    )
    original = layer()
    without_chain = SignatureLayer(
        original.payload,
        {k: v for k, v in original.annotations.items() if k != "dev.sigstore.cosign/chain"},
        original.layer_digest,
    )

    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(without_chain, image_digest(IMAGE), authority)
    assert caught.value.check == "certificate-chain"


def test_other_image_digest_rejected() -> None:
    authority = KeylessAuthority(
        "fulcio",
        TrustRoot.public_good(),
        issuer="https://github.com/login/oauth",
        subject="mitr@redhat.com",
    )

    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(layer(), image_digest("dir-img-cosign-valid"), authority)
    assert caught.value.check == "image-digest"


def test_fixture_files_present() -> None:
    assert asset("cosign/fulcio-chain").read_text().count("BEGIN CERTIFICATE") == 2
