"""Real cosign signatures from containers/image, checked case by case against MANIFEST.json.

Each case names an image folder (manifest.json plus signature-N files), the trusted keys, an
identity rule and the expected result. `verify_layer` does the cryptographic checks. Matching the
signed docker-reference against the pulled reference is the policy's job, so this file applies
the two identity rules of the cases itself. That checks the reference `verify_layer` returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from regward.signatures import (
    SIMPLE_SIGNING_MEDIA_TYPE,
    KeyAuthority,
    SignatureLayer,
    SignatureVerificationError,
    VerifiedSignature,
    verify_layer,
)
from tests.conftest import asset
from tests.unit.signatures.support import (
    fixture_bytes,
    image_digest,
    read_signature_file,
    sha256_digest,
)

CASES: list[dict[str, Any]] = json.loads(fixture_bytes("MANIFEST.json"))["cases"]

# Why each rejected case must fail, as the check that stops it. "identity" is the docker-reference
# rule, applied in this file; the other names are `SignatureVerificationError.check` values or
# conditions a caller sees before any layer is verified.
REASON_CHECKS = {
    "signed docker-reference does not match the image reference": "identity",
    "cosign signs the repository without a tag, so an exact-reference policy rejects it": (
        "identity"
    ),
    "tag differs from the signed reference": "identity",
    "Rekor SET does not verify with the configured Rekor key": "tlog-log-id",
    "image has no manifest.json": "no-manifest",
    "manifest digest cannot be computed (schema1 manifest with invalid signatures)": (
        "image-digest"
    ),
    "manifest digest differs from the signed docker-manifest-digest": "image-digest",
    "only a non-signature sigstore attachment is present": "not-simple-signing",
    "no signatures": "no-signatures",
    "valid signature made with a key that is not trusted": "signature",
    "certificate subject email does not match": "keyless",
}


@dataclass(frozen=True)
class Outcome:
    """The result of checking one case: accepted signatures and the checks that failed."""

    verified: tuple[VerifiedSignature, ...]
    failed_checks: tuple[str, ...]


def _case_id(case: dict[str, Any]) -> str:
    source = case.get("image_dir") or case["signature_file"]
    trust = "+".join(case["trust"].get("public_keys", ["fulcio"]))
    rekor = "+".join(case["trust"].get("rekor_public_keys", []))
    return f"{source}|{case.get('reference', '')}|{case.get('identity', '')}|{trust}|{rekor}"


def _authorities(trust: dict[str, Any]) -> list[KeyAuthority]:
    rekor_names = trust.get("rekor_public_keys", [])
    assert len(rekor_names) <= 1, "the fixture cases name at most one Rekor key"
    rekor_pem = fixture_bytes(rekor_names[0]) if rekor_names else None
    return [
        KeyAuthority(
            name=name,
            public_key_pem=fixture_bytes(name),
            rekor_public_key_pem=rekor_pem,
            # containers/image requires a valid SET whenever a Rekor key is configured.
            tlog="required" if rekor_pem is not None else "optional",
        )
        for name in trust["public_keys"]
    ]


def _repository(reference: str) -> str:
    """Return `reference` without its tag (the cases never use a digest reference)."""
    last_slash = reference.rfind("/")
    colon = reference.rfind(":")
    return reference[:colon] if colon > last_slash else reference


def _identity_matches(signed: str, reference: str, rule: str) -> bool:
    if rule == "matchExact":
        # An untagged image reference means the default tag, as in a docker pull; the signed
        # reference is compared as written.
        tagged = reference if _repository(reference) != reference else f"{reference}:latest"
        return signed == tagged
    assert rule == "matchRepository", rule
    return _repository(signed) == _repository(reference)


def _check_case(case: dict[str, Any]) -> Outcome:
    authorities = _authorities(case["trust"])
    if "signature_file" in case:
        # A detached signature of the dir-img-cosign-valid image.
        image_dir, signature_paths = (
            "dir-img-cosign-valid",
            [asset(f"cosign/{case['signature_file']}")],
        )
    else:
        image_dir = case["image_dir"]
        signature_paths = sorted(asset(f"cosign/{image_dir}").glob("signature-*"))

    if not asset(f"cosign/{image_dir}").joinpath("manifest.json").exists():
        return Outcome((), ("no-manifest",))
    digest = image_digest(image_dir)
    if not signature_paths:
        return Outcome((), ("no-signatures",))

    verified: list[VerifiedSignature] = []
    failed: list[str] = []
    for path in signature_paths:
        mime_type, payload, annotations = read_signature_file(path)
        if mime_type != SIMPLE_SIGNING_MEDIA_TYPE:
            failed.append("not-simple-signing")
            continue
        layer = SignatureLayer(payload, annotations, sha256_digest(payload))
        for authority in authorities:
            try:
                signature = verify_layer(layer, digest, authority)
            except SignatureVerificationError as exc:
                failed.append(exc.check)
                continue
            if _identity_matches(signature.docker_reference, case["reference"], case["identity"]):
                verified.append(signature)
            else:
                failed.append("identity")
    return Outcome(tuple(verified), tuple(failed))


@pytest.mark.parametrize("case", CASES, ids=[_case_id(case) for case in CASES])
def test_manifest_case(case: dict[str, Any]) -> None:
    if "fulcio_ca" in case["trust"]:
        pytest.skip("keyless (Fulcio certificate) verification is not part of key-based checks")
    outcome = _check_case(case)
    if case["expected"] == "accept":
        assert outcome.verified, f"no signature accepted; failed checks: {outcome.failed_checks}"
        assert all(signature.image_digest for signature in outcome.verified)
    else:
        assert case["expected"] == "reject"
        assert outcome.verified == ()
        assert REASON_CHECKS[case["reason"]] in outcome.failed_checks


def test_every_manifest_reason_is_mapped() -> None:
    reasons = {case["reason"] for case in CASES if case["expected"] == "reject"}
    assert reasons <= set(REASON_CHECKS)


def test_valid_image_details() -> None:
    layer_path = asset("cosign/dir-img-cosign-valid/signature-1")
    _, payload, annotations = read_signature_file(layer_path)
    layer = SignatureLayer(payload, annotations, sha256_digest(payload))
    authority = KeyAuthority("ci", fixture_bytes("cosign.pub"))

    signature = verify_layer(layer, image_digest("dir-img-cosign-valid"), authority)

    assert signature.authority == "ci"
    assert signature.image_digest == (
        "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
    )
    assert signature.docker_reference == "192.168.64.2:5000/cosign-signed-single-sample"
    assert signature.optional == {}
    assert signature.tlog_verified is False
    assert signature.payload == payload
    assert signature.layer_digest == sha256_digest(payload)


def test_valid_with_tag_keeps_optional() -> None:
    _, payload, annotations = read_signature_file(
        asset("cosign/dir-img-cosign-valid-with-tag/signature-1")
    )
    layer = SignatureLayer(payload, annotations, sha256_digest(payload))
    authority = KeyAuthority("ci", fixture_bytes("cosign.pub"))

    signature = verify_layer(layer, image_digest("dir-img-cosign-valid-with-tag"), authority)

    assert signature.docker_reference == "192.168.64.2:5000/skopeo-signed:tag"
    assert signature.optional == {"creator": "containers/image 5.21.2-dev", "timestamp": 1657296609}


def test_key_rekor_valid_records_log_entry() -> None:
    _, payload, annotations = read_signature_file(
        asset("cosign/dir-img-cosign-key-rekor-valid/signature-1")
    )
    layer = SignatureLayer(payload, annotations, sha256_digest(payload))
    authority = KeyAuthority(
        "rekor",
        fixture_bytes("cosign2.pub"),
        rekor_public_key_pem=fixture_bytes("rekor.pub"),
        tlog="required",
    )

    signature = verify_layer(layer, image_digest("dir-img-cosign-key-rekor-valid"), authority)

    assert signature.tlog_verified is True
    assert signature.integrated_time == 1674251859
    assert signature.log_index == 11608800


def test_key_rekor_valid_without_rekor_key() -> None:
    # With tlog optional and no Rekor key, the bundle is left unchecked and not claimed.
    _, payload, annotations = read_signature_file(
        asset("cosign/dir-img-cosign-key-rekor-valid/signature-1")
    )
    layer = SignatureLayer(payload, annotations, sha256_digest(payload))
    authority = KeyAuthority("plain", fixture_bytes("cosign2.pub"))

    signature = verify_layer(layer, image_digest("dir-img-cosign-key-rekor-valid"), authority)

    assert signature.tlog_verified is False
    assert signature.integrated_time is None


def test_modified_manifest_message() -> None:
    _, payload, annotations = read_signature_file(
        asset("cosign/dir-img-cosign-modified-manifest/signature-1")
    )
    layer = SignatureLayer(payload, annotations, sha256_digest(payload))
    authority = KeyAuthority("ci", fixture_bytes("cosign.pub"))
    actual = image_digest("dir-img-cosign-modified-manifest")

    with pytest.raises(SignatureVerificationError) as caught:
        verify_layer(layer, actual, authority)

    assert caught.value.check == "image-digest"
    assert caught.value.expected == actual
    assert caught.value.got == (
        "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
    )
    assert f"expected {actual}" in str(caught.value)


def test_other_attachment_signature_fails_crypto() -> None:
    # The attachment copies a valid signature annotation onto a non-signature blob.
    mime_type, payload, annotations = read_signature_file(
        asset("cosign/dir-img-cosign-other-attachment/signature-1")
    )
    assert mime_type == "text/plain"
    layer = SignatureLayer(payload, annotations, sha256_digest(payload))
    authority = KeyAuthority("ci", fixture_bytes("cosign.pub"))

    with pytest.raises(SignatureVerificationError, match="does not verify") as caught:
        verify_layer(layer, image_digest("dir-img-cosign-other-attachment"), authority)
    assert caught.value.check == "signature"


def test_fulcio_signature_rejected_by_key_authority() -> None:
    # A keyless signature carries its key in a certificate; no configured key verifies it.
    _, payload, annotations = read_signature_file(
        asset("cosign/dir-img-cosign-fulcio-rekor-valid/signature-1")
    )
    layer = SignatureLayer(payload, annotations, sha256_digest(payload))
    digest = image_digest("dir-img-cosign-fulcio-rekor-valid")
    for name in ("cosign.pub", "cosign2.pub"):
        authority = KeyAuthority(name, fixture_bytes(name))
        with pytest.raises(SignatureVerificationError) as caught:
            verify_layer(layer, digest, authority)
        assert caught.value.check == "signature"
