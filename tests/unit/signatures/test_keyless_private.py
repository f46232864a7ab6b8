"""Keyless `.sig` layers, bundles and `.att` layers from a test-made private Sigstore.

Covers the accepted forms and the attacks: a certificate used outside its validity, an SET for
another payload, an untrusted CA or log, a missing SCT, an identity that matches only an
unanchored prefix, two different issuer extensions, a bundle about another digest and an
attestation signed by an untrusted key.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from regward.signatures import (
    KeyAuthority,
    KeylessAuthority,
    SignatureLayer,
    SignatureVerificationError,
    TrustRoot,
    verify_attestation_layer,
    verify_bundle,
    verify_keyless_layer,
)
from regward.signatures.bundles import BUNDLE_V01
from regward.signatures.dsse import COSIGN_SIGN_PREDICATE_TYPE
from regward.signatures.predicates import SLSA_PROVENANCE_V1, SPDX_DOCUMENT
from regward.signatures.sign import make_payload
from tests.support.sigstore import (
    GITHUB_ISSUER,
    Identity,
    PrivateSigstore,
    b64,
    ec_private_pem,
    envelope_for,
    hashedrekord,
    key_attestation_layer,
    keyless_attestation_layer,
    keyless_bundle,
    keyless_signature_layer,
    provenance_v1,
    public_pem,
    sha256_hex,
    spdx_document,
    statement,
)

DIGEST = "sha256:" + "1f" * 32
OTHER_DIGEST = "sha256:" + "2e" * 32
WORKFLOW = "https://github.com/acme/app/.github/workflows/build.yml@refs/heads/main"
IDENTITY = Identity(WORKFLOW)


@pytest.fixture(scope="module")
def sigstore() -> PrivateSigstore:
    return PrivateSigstore()


@pytest.fixture(scope="module")
def root(sigstore: PrivateSigstore, tmp_path_factory: pytest.TempPathFactory) -> TrustRoot:
    path = tmp_path_factory.mktemp("root") / "trusted_root.json"
    return TrustRoot.load(sigstore.write_trusted_root(path))


def authority(
    root: TrustRoot,
    *,
    subject: str | None = None,
    subject_regexp: str = r"https://github\.com/acme/.+",
    issuer_regexp: str | None = None,
) -> KeylessAuthority:
    """The `gha` authority: GitHub's issuer and acme's workflows unless overridden."""
    return KeylessAuthority(
        "gha",
        root,
        issuer=None if issuer_regexp is not None else GITHUB_ISSUER,
        issuer_regexp=issuer_regexp,
        subject=subject,
        subject_regexp=None if subject is not None else subject_regexp,
    )


def as_layer(blob: bytes, annotations: dict[str, str]) -> SignatureLayer:
    return SignatureLayer(blob, annotations, "sha256:" + sha256_hex(blob))


def signature_layer(sigstore: PrivateSigstore, **issue: object) -> SignatureLayer:
    identity = issue.pop("identity", IDENTITY)
    assert isinstance(identity, Identity)
    return as_layer(*keyless_signature_layer(sigstore, identity, "reg/app", DIGEST, **issue))


# -- tag-based signatures -----------------------------------------------------------------


def test_keyless_layer_verified(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    verified = verify_keyless_layer(signature_layer(sigstore), DIGEST, authority(root))

    assert verified.subject == WORKFLOW
    assert verified.issuer == GITHUB_ISSUER
    assert verified.tlog_verified


@pytest.mark.parametrize("kind", ["email", "uri", "username"])
def test_san_kinds_match_exact_subject(
    sigstore: PrivateSigstore, root: TrustRoot, kind: str
) -> None:
    subject = {"email": "dev@acme.example", "uri": WORKFLOW, "username": "acme-bot"}[kind]
    layer = signature_layer(sigstore, identity=Identity(subject, kind=kind))

    verified = verify_keyless_layer(layer, DIGEST, authority(root, subject=subject))

    assert verified.subject == subject


@pytest.mark.parametrize("extensions", ["v1", "both"])
def test_older_issuer_extension_accepted(
    sigstore: PrivateSigstore, root: TrustRoot, extensions: str
) -> None:
    layer = signature_layer(sigstore, identity=Identity(WORKFLOW, issuer_extensions=extensions))

    assert verify_keyless_layer(layer, DIGEST, authority(root)).issuer == GITHUB_ISSUER


def test_two_different_issuers_rejected(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    layer = signature_layer(sigstore, identity=Identity(WORKFLOW, issuer_extensions="mismatch"))

    with pytest.raises(SignatureVerificationError, match="two different OIDC issuers"):
        verify_keyless_layer(layer, DIGEST, authority(root))


def test_identity_matching_only_a_prefix_rejected(
    sigstore: PrivateSigstore, root: TrustRoot
) -> None:
    # An attacker's repository whose URI starts with the allowed one.
    evil = Identity("https://github.com/acme/app-evil/.github/workflows/x.yml@refs/heads/main")
    layer = signature_layer(sigstore, identity=evil)
    prefix_only = authority(root, subject_regexp=r"https://github\.com/acme/app")

    with pytest.raises(SignatureVerificationError, match="whole value") as caught:
        verify_keyless_layer(layer, DIGEST, prefix_only)
    assert caught.value.check == "identity"


def test_issuer_pattern_must_match_whole_issuer(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    layer = signature_layer(
        sigstore,
        identity=Identity(WORKFLOW, issuer="https://token.actions.githubusercontent.com.evil"),
    )
    pattern = authority(root, issuer_regexp=r"https://token\.actions\.githubusercontent\.com")

    with pytest.raises(SignatureVerificationError, match="issuer does not match"):
        verify_keyless_layer(layer, DIGEST, pattern)


def test_certificate_used_after_its_validity(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    begin = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    layer = signature_layer(
        sigstore, not_before=begin, integrated_time=begin + timedelta(minutes=20)
    )

    with pytest.raises(
        SignatureVerificationError, match="outside the signing certificate"
    ) as caught:
        verify_keyless_layer(layer, DIGEST, authority(root))
    assert caught.value.check == "certificate-validity"


def test_set_for_another_payload_rejected(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    signed = sigstore.issue(IDENTITY)
    payload = make_payload("reg/app", DIGEST)
    signature = signed.key.sign(payload, ec.ECDSA(hashes.SHA256()))
    other = make_payload("reg/app", OTHER_DIGEST)
    other_signature = signed.key.sign(other, ec.ECDSA(hashes.SHA256()))
    # A genuine SET, but over an entry for the other payload.
    entry = sigstore.log(
        hashedrekord(other, other_signature, signed.certificate_pem.encode()),
        signed.integrated_time,
    )
    layer = as_layer(
        payload,
        {
            "dev.cosignproject.cosign/signature": b64(signature),
            "dev.sigstore.cosign/certificate": signed.certificate_pem,
            "dev.sigstore.cosign/chain": signed.chain_pem,
            "dev.sigstore.cosign/bundle": entry.cosign_bundle(),
        },
    )

    with pytest.raises(SignatureVerificationError, match="another payload") as caught:
        verify_keyless_layer(layer, DIGEST, authority(root))
    assert caught.value.check == "tlog-body"


def test_tampered_set_rejected(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    layer = signature_layer(sigstore)
    bundle = json.loads(layer.annotations["dev.sigstore.cosign/bundle"])
    bundle["Payload"]["integratedTime"] += 1
    annotations = {**layer.annotations, "dev.sigstore.cosign/bundle": json.dumps(bundle)}

    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(as_layer(layer.payload, annotations), DIGEST, authority(root))
    assert caught.value.check == "tlog-set"


def test_missing_rekor_bundle_rejected(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    layer = signature_layer(sigstore)
    annotations = {
        key: value for key, value in layer.annotations.items() if not key.endswith("/bundle")
    }

    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(as_layer(layer.payload, annotations), DIGEST, authority(root))
    assert caught.value.check == "tlog-missing"


def test_untrusted_ca_rejected(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    # Another instance with the same Rekor and CT keys but its own CA.
    impostor = PrivateSigstore(rekor_key=sigstore.rekor_key, ct_key=sigstore.ct_key)
    layer = signature_layer(impostor)

    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(layer, DIGEST, authority(root))
    assert caught.value.check == "certificate-chain"


def test_untrusted_rekor_log_rejected(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    impostor = PrivateSigstore(
        root_key=sigstore.root_key,
        intermediate_key=sigstore.intermediate_key,
        ct_key=sigstore.ct_key,
    )
    layer = signature_layer(impostor)

    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(layer, DIGEST, authority(root))
    assert caught.value.check == "tlog-log-id"


def test_missing_sct_rejected_unless_ignored(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    layer = signature_layer(sigstore, sct=False)

    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(layer, DIGEST, authority(root))
    assert caught.value.check == "sct"
    ignoring = KeylessAuthority(
        "gha", root, issuer=GITHUB_ISSUER, subject=WORKFLOW, ignore_sct=True
    )
    assert verify_keyless_layer(layer, DIGEST, ignoring).subject == WORKFLOW


def test_sct_from_untrusted_log_rejected(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    impostor = PrivateSigstore(
        root_key=sigstore.root_key,
        intermediate_key=sigstore.intermediate_key,
        rekor_key=sigstore.rekor_key,
    )
    layer = signature_layer(impostor)

    with pytest.raises(SignatureVerificationError, match="does not list") as caught:
        verify_keyless_layer(layer, DIGEST, authority(root))
    assert caught.value.check == "sct"


def test_certificate_without_code_signing_rejected(
    sigstore: PrivateSigstore, root: TrustRoot
) -> None:
    layer = signature_layer(sigstore, code_signing=False)

    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(layer, DIGEST, authority(root))
    assert caught.value.check == "certificate-usage"


def test_signature_for_another_image_rejected(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    with pytest.raises(SignatureVerificationError) as caught:
        verify_keyless_layer(signature_layer(sigstore), OTHER_DIGEST, authority(root))
    assert caught.value.check == "image-digest"


# -- bundles ------------------------------------------------------------------------------


def test_dsse_bundle_verified_by_sigstore(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    bundle = keyless_bundle(sigstore, IDENTITY, statement(DIGEST, SPDX_DOCUMENT, spdx_document()))

    verified = verify_bundle(bundle, DIGEST, authority(root))

    assert verified.predicate_type == SPDX_DOCUMENT
    assert verified.subject == WORKFLOW
    assert verified.statement is not None


def test_sign_predicate_bundle(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    bundle = keyless_bundle(sigstore, IDENTITY, statement(DIGEST, COSIGN_SIGN_PREDICATE_TYPE))

    assert verify_bundle(bundle, DIGEST, authority(root)).predicate_type == (
        COSIGN_SIGN_PREDICATE_TYPE
    )


def test_bundle_about_another_digest_rejected(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    bundle = keyless_bundle(sigstore, IDENTITY, statement(OTHER_DIGEST, SPDX_DOCUMENT))

    with pytest.raises(SignatureVerificationError, match="another artifact") as caught:
        verify_bundle(bundle, DIGEST, authority(root))
    assert caught.value.check == "subject-digest"


def test_bundle_wrong_identity_rejected(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    bundle = keyless_bundle(sigstore, IDENTITY, statement(DIGEST, SPDX_DOCUMENT))

    with pytest.raises(SignatureVerificationError) as caught:
        verify_bundle(
            bundle, DIGEST, authority(root, subject_regexp=r"https://github\.com/other/.+")
        )
    assert caught.value.check == "identity"


def test_set_only_v01_bundle(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    document = json.loads(keyless_bundle(sigstore, IDENTITY, statement(DIGEST, SPDX_DOCUMENT)))
    # A v0.1 bundle carries a certificate chain and needs no checkpointed inclusion proof.
    certificate = document["verificationMaterial"].pop("certificate")
    document["verificationMaterial"]["x509CertificateChain"] = {"certificates": [certificate]}
    del document["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    document["mediaType"] = BUNDLE_V01

    verified = verify_bundle(json.dumps(document).encode(), DIGEST, authority(root))

    assert verified.subject == WORKFLOW
    assert verified.integrated_time is not None


def test_set_only_v01_bundle_for_another_payload(
    sigstore: PrivateSigstore, root: TrustRoot
) -> None:
    document = json.loads(keyless_bundle(sigstore, IDENTITY, statement(DIGEST, SPDX_DOCUMENT)))
    other = json.loads(keyless_bundle(sigstore, IDENTITY, statement(DIGEST, SLSA_PROVENANCE_V1)))
    certificate = document["verificationMaterial"].pop("certificate")
    document["verificationMaterial"]["x509CertificateChain"] = {"certificates": [certificate]}
    # The log entry (with its valid SET) of another bundle.
    document["verificationMaterial"]["tlogEntries"] = other["verificationMaterial"]["tlogEntries"]
    del document["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    document["mediaType"] = BUNDLE_V01

    with pytest.raises(SignatureVerificationError) as caught:
        verify_bundle(json.dumps(document).encode(), DIGEST, authority(root))
    assert caught.value.check == "tlog-body"


def test_key_signed_bundle(sigstore: PrivateSigstore) -> None:
    private, public = ec_private_pem()
    document = json.loads(keyless_bundle(sigstore, IDENTITY, statement(DIGEST, SPDX_DOCUMENT)))
    document["dsseEnvelope"] = envelope_for(statement(DIGEST, SPDX_DOCUMENT), private)
    document["verificationMaterial"] = {"publicKey": {"hint": "ci"}, "tlogEntries": []}
    data = json.dumps(document).encode()

    verified = verify_bundle(data, DIGEST, KeyAuthority("ci", public))
    assert verified.key_id is not None
    with pytest.raises(SignatureVerificationError) as caught:
        verify_bundle(data, DIGEST, KeyAuthority("other", ec_private_pem()[1]))
    assert caught.value.check == "signature"


# -- attestations -------------------------------------------------------------------------


def test_keyless_attestation_layer(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    payload = statement(
        DIGEST, SLSA_PROVENANCE_V1, provenance_v1("b", "https://github.com/acme/app")
    )
    layer = as_layer(*keyless_attestation_layer(sigstore, IDENTITY, payload, SLSA_PROVENANCE_V1))

    verified = verify_attestation_layer(layer, DIGEST, authority(root))

    assert verified.predicate_type == SLSA_PROVENANCE_V1
    assert verified.subject == WORKFLOW
    assert verified.integrated_time is not None


def test_key_attestation_layer_with_rekor(sigstore: PrivateSigstore) -> None:
    private, public = ec_private_pem()
    payload = statement(DIGEST, SPDX_DOCUMENT, version="v0.1", name="reg/app")
    layer = as_layer(*key_attestation_layer(private, payload, SPDX_DOCUMENT, rekor=sigstore))
    trusted = KeyAuthority(
        "ci", public, rekor_public_key_pem=public_pem(sigstore.rekor_key), tlog="required"
    )

    verified = verify_attestation_layer(layer, DIGEST, trusted)

    assert verified.statement.statement_type == "https://in-toto.io/Statement/v0.1"
    assert verified.integrated_time is not None


def test_attestation_signed_by_untrusted_key(sigstore: PrivateSigstore) -> None:
    attacker, _ = ec_private_pem()
    _, trusted_public = ec_private_pem()
    layer = as_layer(
        *key_attestation_layer(attacker, statement(DIGEST, SPDX_DOCUMENT), SPDX_DOCUMENT)
    )

    with pytest.raises(SignatureVerificationError) as caught:
        verify_attestation_layer(layer, DIGEST, KeyAuthority("ci", trusted_public))
    assert caught.value.check == "signature"


def test_keyless_attestation_by_other_identity(sigstore: PrivateSigstore, root: TrustRoot) -> None:
    payload = statement(DIGEST, SPDX_DOCUMENT)
    stranger = Identity("https://github.com/mallory/app/.github/workflows/x.yml@refs/heads/main")
    layer = as_layer(*keyless_attestation_layer(sigstore, stranger, payload, SPDX_DOCUMENT))

    with pytest.raises(SignatureVerificationError) as caught:
        verify_attestation_layer(layer, DIGEST, authority(root))
    assert caught.value.check == "identity"


def test_attestation_about_another_image(sigstore: PrivateSigstore) -> None:
    private, public = ec_private_pem()
    layer = as_layer(
        *key_attestation_layer(private, statement(OTHER_DIGEST, SPDX_DOCUMENT), SPDX_DOCUMENT)
    )

    with pytest.raises(SignatureVerificationError) as caught:
        verify_attestation_layer(layer, DIGEST, KeyAuthority("ci", public))
    assert caught.value.check == "subject-digest"


def test_attestation_with_other_payload_type(sigstore: PrivateSigstore) -> None:
    private, public = ec_private_pem()
    blob, annotations = key_attestation_layer(private, statement(DIGEST, SPDX_DOCUMENT), "x")
    envelope = json.loads(blob)
    envelope["payloadType"] = "text/plain"
    changed = json.dumps(envelope).encode()

    with pytest.raises(SignatureVerificationError) as caught:
        verify_attestation_layer(as_layer(changed, annotations), DIGEST, KeyAuthority("ci", public))
    assert caught.value.check == "dsse-payload-type"


def test_trusted_root_round_trip(sigstore: PrivateSigstore, tmp_path: Path) -> None:
    root = TrustRoot.load(sigstore.write_trusted_root(tmp_path / "root.json"))

    assert root.rekor[0].log_id == sigstore.rekor_log_id
    assert root.ct_log(sigstore.ct_log_id) is not None
    assert base64.b64decode(b64(b"x")) == b"x"
