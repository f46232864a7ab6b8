"""verify_layer on signatures made here: each check, tampered and malformed input, Rekor bundles."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from regward.signatures import (
    BUNDLE_ANNOTATION,
    MAX_BUNDLE_ANNOTATION_SIZE,
    MAX_PAYLOAD_SIZE,
    SIGNATURE_ANNOTATION,
    InvalidAuthorityError,
    InvalidKeyError,
    KeyAuthority,
    SignatureError,
    SignatureLayer,
    SignatureVerificationError,
    generate_keypair,
    is_accessory_tag,
    key_id,
    make_payload,
    parse_rekor_bundle,
    sign_payload,
    signature_tag,
    verify_layer,
    verify_rekor_body,
    verify_set,
)
from regward.signatures.keys import load_public_key
from tests.unit.signatures.support import (
    fixture_bytes,
    hashedrekord_body,
    make_bundle,
    public_pem,
    sha256_digest,
)

IMAGE = "sha256:" + "ab" * 32
OTHER_IMAGE = "sha256:" + "cd" * 32
REFERENCE = "registry.test/app"


@pytest.fixture(scope="module")
def signer() -> tuple[bytes, bytes]:
    return generate_keypair("ecdsa-p256")


@pytest.fixture(scope="module")
def rekor_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _layer(private_pem: bytes, payload: bytes, **annotations: str) -> SignatureLayer:
    signature = base64.b64encode(sign_payload(private_pem, payload)).decode()
    merged = {SIGNATURE_ANNOTATION: signature, **annotations}
    return SignatureLayer(payload, merged, sha256_digest(payload))


def _check(exc_info: pytest.ExceptionInfo[SignatureVerificationError], check: str) -> None:
    assert exc_info.value.check == check, str(exc_info.value)


def _payload_with(**critical: object) -> bytes:
    document = json.loads(make_payload(REFERENCE, IMAGE))
    document["critical"].update(critical)
    return json.dumps(document).encode()


def test_valid_signature(signer: tuple[bytes, bytes]) -> None:
    private_pem, public = signer
    payload = make_payload(REFERENCE, IMAGE, {"build": "42"})
    signature = verify_layer(_layer(private_pem, payload), IMAGE, KeyAuthority("ci", public))
    assert signature.image_digest == IMAGE
    assert signature.docker_reference == REFERENCE
    assert signature.optional == {"build": "42"}
    assert signature.authority == "ci"
    assert signature.tlog_verified is False


def test_wrong_key(signer: tuple[bytes, bytes]) -> None:
    private_pem, _ = signer
    _, other_public = generate_keypair("ecdsa-p256")
    layer = _layer(private_pem, make_payload(REFERENCE, IMAGE))
    with pytest.raises(SignatureVerificationError, match="does not verify with key sha256:") as ei:
        verify_layer(layer, IMAGE, KeyAuthority("other", other_public))
    _check(ei, "signature")


def test_modified_payload_with_matching_digest(signer: tuple[bytes, bytes]) -> None:
    # The attacker edits the blob and fixes the layer digest, but cannot re-sign.
    private_pem, public = signer
    layer = _layer(private_pem, make_payload(REFERENCE, OTHER_IMAGE))
    forged = layer.payload.replace(OTHER_IMAGE.encode(), IMAGE.encode())
    tampered = SignatureLayer(forged, layer.annotations, sha256_digest(forged))
    with pytest.raises(SignatureVerificationError) as ei:
        verify_layer(tampered, IMAGE, KeyAuthority("ci", public))
    _check(ei, "signature")


def test_wrong_layer_digest(signer: tuple[bytes, bytes]) -> None:
    private_pem, public = signer
    layer = _layer(private_pem, make_payload(REFERENCE, IMAGE))
    wrong = SignatureLayer(layer.payload, layer.annotations, "sha256:" + "00" * 32)
    with pytest.raises(SignatureVerificationError, match="does not match its layer digest") as ei:
        verify_layer(wrong, IMAGE, KeyAuthority("ci", public))
    _check(ei, "layer-digest")
    assert ei.value.got == layer.layer_digest
    assert ei.value.expected == "sha256:" + "00" * 32


@pytest.mark.parametrize("bad_digest", ["", "sha256:xyz", "md5:" + "00" * 16, "sha256"])
def test_malformed_layer_digest(signer: tuple[bytes, bytes], bad_digest: str) -> None:
    private_pem, public = signer
    layer = _layer(private_pem, make_payload(REFERENCE, IMAGE))
    with pytest.raises(SignatureVerificationError, match="invalid digest") as ei:
        verify_layer(
            SignatureLayer(layer.payload, layer.annotations, bad_digest),
            IMAGE,
            KeyAuthority("ci", public),
        )
    _check(ei, "layer-digest")


def test_sha512_layer_digest(signer: tuple[bytes, bytes]) -> None:
    private_pem, public = signer
    layer = _layer(private_pem, make_payload(REFERENCE, IMAGE))
    digest = "sha512:" + hashlib.sha512(layer.payload).hexdigest()
    result = verify_layer(
        SignatureLayer(layer.payload, layer.annotations, digest), IMAGE, KeyAuthority("ci", public)
    )
    assert result.layer_digest == digest


def test_wrong_digest_in_payload(signer: tuple[bytes, bytes]) -> None:
    # A genuine signature for another image, copied under this image's tag.
    private_pem, public = signer
    layer = _layer(private_pem, make_payload(REFERENCE, OTHER_IMAGE))
    with pytest.raises(SignatureVerificationError, match="signature is for another image") as ei:
        verify_layer(layer, IMAGE, KeyAuthority("ci", public))
    _check(ei, "image-digest")
    assert ei.value.got == OTHER_IMAGE
    assert ei.value.expected == IMAGE


@pytest.mark.parametrize(
    "signature_type",
    ["atomic container signature", "Cosign Container Image Signature", "", None, 1],
)
def test_wrong_payload_type(signer: tuple[bytes, bytes], signature_type: object) -> None:
    private_pem, public = signer
    layer = _layer(private_pem, _payload_with(type=signature_type))
    with pytest.raises(SignatureVerificationError, match="wrong critical.type") as ei:
        verify_layer(layer, IMAGE, KeyAuthority("ci", public))
    _check(ei, "payload-type")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b"{}", "no critical object"),
        (b'{"critical": []}', "no critical object"),
        (
            b'{"critical":{"identity":{"docker-reference":"a"},"image":{},'
            b'"type":"cosign container image signature"}}',
            "lacks critical.image.docker-manifest-digest",
        ),
        (
            b'{"critical":{"identity":{},"image":{"docker-manifest-digest":"'
            + IMAGE.encode()
            + b'"},"type":"cosign container image signature"}}',
            "lacks critical.identity.docker-reference",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"'
            + IMAGE.encode()
            + b'"},"type":"cosign container image signature"},"optional":[1]}',
            "optional field is neither an object nor null",
        ),
        (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
    ],
    ids=[
        "not-json",
        "not-utf8",
        "array",
        "no-critical",
        "critical-array",
        "no-digest",
        "no-reference",
        "optional-array",
        "deep-nesting",
    ],
)
def test_malformed_payload(signer: tuple[bytes, bytes], payload: bytes, message: str) -> None:
    private_pem, public = signer
    with pytest.raises(SignatureVerificationError, match=message) as ei:
        verify_layer(_layer(private_pem, payload), IMAGE, KeyAuthority("ci", public))
    _check(ei, "payload")


def test_duplicate_key_in_payload(signer: tuple[bytes, bytes]) -> None:
    # Two digests in one object: Go and Python would both take the last one, other parsers not.
    private_pem, public = signer
    payload = (
        b'{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":"'
        + OTHER_IMAGE.encode()
        + b'","docker-manifest-digest":"'
        + IMAGE.encode()
        + b'"},"type":"cosign container image signature"},"optional":null}'
    )
    with pytest.raises(SignatureVerificationError, match="duplicate key") as ei:
        verify_layer(_layer(private_pem, payload), IMAGE, KeyAuthority("ci", public))
    _check(ei, "payload")


def test_unknown_critical_field(signer: tuple[bytes, bytes]) -> None:
    private_pem, public = signer
    layer = _layer(private_pem, _payload_with(expires="2020-01-01"))
    with pytest.raises(SignatureVerificationError, match="unknown critical fields: expires") as ei:
        verify_layer(layer, IMAGE, KeyAuthority("ci", public))
    _check(ei, "payload")


def test_oversized_payload(signer: tuple[bytes, bytes]) -> None:
    private_pem, public = signer
    payload = make_payload(REFERENCE, IMAGE, {"padding": "x" * MAX_PAYLOAD_SIZE})
    with pytest.raises(SignatureVerificationError, match="payload is too large") as ei:
        verify_layer(_layer(private_pem, payload), IMAGE, KeyAuthority("ci", public))
    _check(ei, "payload-size")


def test_missing_signature_annotation(signer: tuple[bytes, bytes]) -> None:
    _, public = signer
    payload = make_payload(REFERENCE, IMAGE)
    layer = SignatureLayer(payload, {"other": "x"}, sha256_digest(payload))
    with pytest.raises(SignatureVerificationError, match="has no dev.cosignproject") as ei:
        verify_layer(layer, IMAGE, KeyAuthority("ci", public))
    _check(ei, "signature-annotation")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "annotation is empty"),
        ("not base64!", "not valid base64"),
        ("YWJj\n", "not valid base64"),
        ("YWJjZA", "not valid base64"),
        ("A" * 9000, "annotation is too large"),
    ],
    ids=["empty", "bad-characters", "newline", "bad-padding", "oversized"],
)
def test_bad_signature_annotation(signer: tuple[bytes, bytes], value: str, message: str) -> None:
    _, public = signer
    payload = make_payload(REFERENCE, IMAGE)
    layer = SignatureLayer(payload, {SIGNATURE_ANNOTATION: value}, sha256_digest(payload))
    with pytest.raises(SignatureVerificationError, match=message) as ei:
        verify_layer(layer, IMAGE, KeyAuthority("ci", public))
    _check(ei, "signature-annotation")


@pytest.mark.parametrize("kind", ["ecdsa-p384", "ecdsa-p521", "rsa-2048", "ed25519"])
def test_other_key_kinds(kind: str) -> None:
    private_pem, public = generate_keypair(kind)
    layer = _layer(private_pem, make_payload(REFERENCE, IMAGE))
    assert verify_layer(layer, IMAGE, KeyAuthority(kind, public)).authority == kind


# Rekor bundles, signed by a Rekor key made for the test.


def _bundled_layer(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey, **body_overrides: bytes
) -> SignatureLayer:
    private_pem, public = signer
    payload = make_payload(REFERENCE, IMAGE)
    signature = sign_payload(private_pem, payload)
    body = hashedrekord_body(
        body_overrides.get("payload", payload),
        body_overrides.get("signature", signature),
        body_overrides.get("key", public),
    )
    annotations = {
        SIGNATURE_ANNOTATION: base64.b64encode(signature).decode(),
        BUNDLE_ANNOTATION: make_bundle(rekor_key, body),
    }
    return SignatureLayer(payload, annotations, sha256_digest(payload))


def _rekor_authority(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey, tlog: str = "required"
) -> KeyAuthority:
    return KeyAuthority("ci", signer[1], rekor_public_key_pem=public_pem(rekor_key), tlog=tlog)


def test_bundle_verifies(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    layer = _bundled_layer(signer, rekor_key)
    result = verify_layer(layer, IMAGE, _rekor_authority(signer, rekor_key))
    assert result.tlog_verified is True
    assert result.integrated_time == 1700000000
    assert result.log_index == 42


def test_bundle_for_other_payload(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    layer = _bundled_layer(signer, rekor_key, payload=b"another payload")
    with pytest.raises(
        SignatureVerificationError, match="Rekor entry is for another payload"
    ) as ei:
        verify_layer(layer, IMAGE, _rekor_authority(signer, rekor_key))
    _check(ei, "tlog-body")


def test_bundle_for_other_signature(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    other_signature = sign_payload(signer[0], make_payload(REFERENCE, IMAGE))
    layer = _bundled_layer(signer, rekor_key, signature=other_signature)
    with pytest.raises(SignatureVerificationError, match="another signature") as ei:
        verify_layer(layer, IMAGE, _rekor_authority(signer, rekor_key))
    _check(ei, "tlog-body")


def test_bundle_for_other_key(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    _, other_public = generate_keypair("ecdsa-p256")
    layer = _bundled_layer(signer, rekor_key, key=other_public)
    with pytest.raises(SignatureVerificationError, match="names another public key") as ei:
        verify_layer(layer, IMAGE, _rekor_authority(signer, rekor_key))
    _check(ei, "tlog-body")


def test_bundle_from_other_log(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    layer = _bundled_layer(signer, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(SignatureVerificationError, match="from another log") as ei:
        verify_layer(layer, IMAGE, _rekor_authority(signer, rekor_key))
    _check(ei, "tlog-log-id")


def test_bundle_with_forged_log_id(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    # Signed by another key but claiming the trusted log's id: the SET itself must fail.
    trusted_id = load_public_key(public_pem(rekor_key))
    private_pem, public = signer
    payload = make_payload(REFERENCE, IMAGE)
    signature = sign_payload(private_pem, payload)
    bundle = make_bundle(
        ec.generate_private_key(ec.SECP256R1()),
        hashedrekord_body(payload, signature, public),
        log_id=key_id(trusted_id),
    )
    layer = SignatureLayer(
        payload,
        {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode(), BUNDLE_ANNOTATION: bundle},
        sha256_digest(payload),
    )
    with pytest.raises(SignatureVerificationError, match="signed entry timestamp does not") as ei:
        verify_layer(layer, IMAGE, _rekor_authority(signer, rekor_key))
    _check(ei, "tlog-set")


def test_bundle_with_edited_integrated_time(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    layer = _bundled_layer(signer, rekor_key)
    bundle = json.loads(layer.annotations[BUNDLE_ANNOTATION])
    bundle["Payload"]["integratedTime"] += 1
    annotations = {**layer.annotations, BUNDLE_ANNOTATION: json.dumps(bundle)}
    with pytest.raises(SignatureVerificationError) as ei:
        verify_layer(
            SignatureLayer(layer.payload, annotations, layer.layer_digest),
            IMAGE,
            _rekor_authority(signer, rekor_key),
        )
    _check(ei, "tlog-set")


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"Payload": {}}', "needs a string SignedEntryTimestamp"),
        ('{"SignedEntryTimestamp": "AA==", "Payload": {"body": "x"}}', "Payload needs body"),
        (
            '{"SignedEntryTimestamp": "AA==", "Payload": {"body": "x", "integratedTime": true,'
            ' "logIndex": 1, "logID": "x"}}',
            "Payload needs body",
        ),
        (
            '{"SignedEntryTimestamp": "%%", "Payload": {"body": "x", "integratedTime": 1,'
            ' "logIndex": 1, "logID": "x"}}',
            "not valid base64",
        ),
        ("{" + " " * MAX_BUNDLE_ANNOTATION_SIZE + "}", "too large"),
    ],
    ids=["not-json", "array", "no-set", "no-fields", "bool-time", "bad-base64", "oversized"],
)
def test_malformed_bundle(bundle: str, message: str) -> None:
    with pytest.raises(SignatureVerificationError, match=message) as ei:
        parse_rekor_bundle(bundle)
    _check(ei, "bundle")


def test_bundle_body_unsupported_kind(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    body = base64.b64encode(json.dumps({"kind": "intoto", "spec": {}}).encode()).decode()
    bundle = parse_rekor_bundle(make_bundle(rekor_key, body))
    verify_set(bundle, rekor_key.public_key())
    with pytest.raises(SignatureVerificationError, match="unsupported Rekor entry kind") as ei:
        verify_rekor_body(
            bundle, signature=b"x", public_key=load_public_key(signer[1]), payload=b"x"
        )
    _check(ei, "tlog-body")


def test_bundle_rekord_kind_accepted(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    private_pem, public = signer
    payload = make_payload(REFERENCE, IMAGE)
    signature = sign_payload(private_pem, payload)
    body = hashedrekord_body(payload, signature, public, kind="rekord")
    bundle = parse_rekor_bundle(make_bundle(rekor_key, body))
    verify_set(bundle, rekor_key.public_key())
    verify_rekor_body(
        bundle, signature=signature, public_key=load_public_key(public), payload=payload
    )


def test_bundle_rekord_other_format(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    private_pem, public = signer
    payload = make_payload(REFERENCE, IMAGE)
    signature = sign_payload(private_pem, payload)
    entry = json.loads(base64.b64decode(hashedrekord_body(payload, signature, public)))
    entry["kind"] = "rekord"
    entry["spec"]["signature"]["format"] = "pgp"
    body = base64.b64encode(json.dumps(entry).encode()).decode()
    bundle = parse_rekor_bundle(make_bundle(rekor_key, body))
    with pytest.raises(SignatureVerificationError, match="got 'pgp', expected 'x509'") as ei:
        verify_rekor_body(
            bundle, signature=signature, public_key=load_public_key(public), payload=payload
        )
    _check(ei, "tlog-body")


def test_bundle_body_missing_fields(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    key = load_public_key(signer[1])
    for spec, message in [
        ({}, "lacks spec.data.hash.value"),
        ({"data": {"hash": {"value": "00"}}, "signature": {"content": "AA=="}}, "publicKey"),
        (
            {
                "data": {"hash": {"algorithm": "sha1", "value": "00"}},
                "signature": {"content": "AA==", "publicKey": {"content": "AA=="}},
            },
            "got 'sha1', expected 'sha256'",
        ),
    ]:
        entry = {"kind": "hashedrekord", "spec": spec}
        body = base64.b64encode(json.dumps(entry).encode()).decode()
        bundle = parse_rekor_bundle(make_bundle(rekor_key, body))
        with pytest.raises(SignatureVerificationError, match=message) as ei:
            verify_rekor_body(bundle, signature=b"x", public_key=key, payload=b"x")
        _check(ei, "tlog-body")


def test_bundle_body_bad_base64(rekor_key: ec.EllipticCurvePrivateKey) -> None:
    bundle = parse_rekor_bundle(make_bundle(rekor_key, "%%%"))
    key = load_public_key(public_pem(rekor_key))
    with pytest.raises(SignatureVerificationError, match="not valid base64") as ei:
        verify_rekor_body(bundle, signature=b"x", public_key=key, payload=b"x")
    _check(ei, "tlog-body")


def test_tlog_required_without_bundle(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    layer = _layer(signer[0], make_payload(REFERENCE, IMAGE))
    with pytest.raises(SignatureVerificationError, match="requires a Rekor bundle") as ei:
        verify_layer(layer, IMAGE, _rekor_authority(signer, rekor_key))
    _check(ei, "tlog-missing")


def test_tlog_optional_without_bundle(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    layer = _layer(signer[0], make_payload(REFERENCE, IMAGE))
    result = verify_layer(layer, IMAGE, _rekor_authority(signer, rekor_key, tlog="optional"))
    assert result.tlog_verified is False


def test_tlog_optional_bad_bundle_still_fails(
    signer: tuple[bytes, bytes], rekor_key: ec.EllipticCurvePrivateKey
) -> None:
    # A bundle that is present and checkable must verify, even when the log is optional.
    layer = _bundled_layer(signer, rekor_key, payload=b"other")
    with pytest.raises(SignatureVerificationError) as ei:
        verify_layer(layer, IMAGE, _rekor_authority(signer, rekor_key, tlog="optional"))
    _check(ei, "tlog-body")


# Standalone Rekor fixtures from containers/image: a real SET for a Fulcio-certificate signature.


def test_fixture_set_verifies() -> None:
    rekor = load_public_key(fixture_bytes("rekor.pub"))
    assert isinstance(rekor, ec.EllipticCurvePublicKey)
    bundle = parse_rekor_bundle(fixture_bytes("rekor-set").decode())
    verify_set(bundle, rekor)
    assert bundle.integrated_time == 1670870899


def test_fixture_body_binds_certificate_key() -> None:
    bundle = parse_rekor_bundle(fixture_bytes("rekor-set").decode())
    certificate_key = x509.load_pem_x509_certificate(fixture_bytes("fulcio-cert")).public_key()
    assert isinstance(certificate_key, ec.EllipticCurvePublicKey)
    signature = base64.b64decode(fixture_bytes("rekor-sig"))
    verify_rekor_body(
        bundle,
        signature=signature,
        public_key=certificate_key,
        payload=fixture_bytes("rekor-payload"),
    )
    with pytest.raises(SignatureVerificationError, match="another payload"):
        verify_rekor_body(
            bundle,
            signature=signature,
            public_key=certificate_key,
            payload=fixture_bytes("rekor-payload") + b"\n",
        )


def test_fixture_set_rejects_other_key() -> None:
    cosign_key = load_public_key(fixture_bytes("cosign.pub"))
    assert isinstance(cosign_key, ec.EllipticCurvePublicKey)
    bundle = parse_rekor_bundle(fixture_bytes("rekor-set").decode())
    with pytest.raises(SignatureVerificationError) as ei:
        verify_set(bundle, cosign_key)
    _check(ei, "tlog-log-id")


# Authority configuration.


def test_rsa_rekor_key_refused() -> None:
    with pytest.raises(InvalidKeyError, match="Rekor public key must be ECDSA"):
        KeyAuthority(
            "ci",
            fixture_bytes("cosign.pub"),
            rekor_public_key_pem=fixture_bytes("some-rsa-key.pub"),
        )


def test_authority_with_bad_key() -> None:
    with pytest.raises(InvalidKeyError, match="authority 'ci': public key is not a PEM"):
        KeyAuthority("ci", b"garbage")


def test_authority_unknown_tlog_mode() -> None:
    with pytest.raises(InvalidAuthorityError, match="unknown tlog mode: got 'always'"):
        KeyAuthority("ci", fixture_bytes("cosign.pub"), tlog="always")


def test_authority_required_tlog_needs_rekor_key() -> None:
    with pytest.raises(InvalidAuthorityError, match="has no Rekor public key"):
        KeyAuthority("ci", fixture_bytes("cosign.pub"), tlog="required")


def test_authority_equality_ignores_loaded_keys() -> None:
    first = KeyAuthority("ci", fixture_bytes("cosign.pub"))
    second = KeyAuthority("ci", fixture_bytes("cosign.pub"))
    assert first == second
    assert hash(first) == hash(second)
    assert "public_key=" not in repr(first)


# Tags.


def test_signature_tag() -> None:
    assert signature_tag(IMAGE) == "sha256-" + "ab" * 32 + ".sig"
    assert signature_tag(IMAGE, "att") == "sha256-" + "ab" * 32 + ".att"
    assert signature_tag(IMAGE, "") == "sha256-" + "ab" * 32


@pytest.mark.parametrize("digest", ["", "sha256:" + "AB" * 32, "sha256:abc", "latest"])
def test_signature_tag_rejects_bad_digest(digest: str) -> None:
    with pytest.raises(SignatureError, match="cannot build a signature tag"):
        signature_tag(digest)


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("sha256-" + "ab" * 32, True),
        ("sha256-" + "ab" * 32 + ".sig", True),
        ("sha256-" + "ab" * 32 + ".att", True),
        ("sha256-" + "ab" * 32 + ".sbom", True),
        ("sha256-" + "ab" * 32 + ".foo", False),
        ("sha256-" + "ab" * 31 + ".sig", False),
        ("sha256-" + "AB" * 32 + ".sig", False),
        ("sha256:" + "ab" * 32, False),
        ("latest", False),
        ("x-sha256-" + "ab" * 32 + ".sig", False),
        ("sha256-" + "ab" * 32 + ".sig.sig", False),
    ],
)
def test_is_accessory_tag(tag: str, expected: bool) -> None:
    assert is_accessory_tag(tag) is expected
