"""Real Sigstore bundles from sigstore-python, checked case by case against their MANIFEST.json.

Each bundle is verified for the digest of its artifact (or its message digest, or the subject of
a DSSE statement) with a keyless authority for the certificate's own identity, then with a wrong
identity. `tests/fixtures/sigstore/SOURCES.md` explains the case where regward accepts a bundle
the manifest expects to be rejected.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from regward.signatures import (
    BUNDLE_MEDIA_TYPES,
    KeylessAuthority,
    SignatureVerificationError,
    TrustRoot,
    is_bundle_media_type,
    verify_bundle,
)
from regward.signatures.bundles import BUNDLE_V01
from tests.conftest import asset

CASES: list[dict[str, Any]] = json.loads(asset("sigstore/MANIFEST.json").read_text())["bundles"]

# The DSSE bundle's statement is about a.txt, not about the file stored next to it.
DSSE_SUBJECT = "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"

# Cases where regward's expected result differs from the manifest's, and why.
OVERRIDES = {
    # v0.1 requires only an inclusion promise; regward verifies the SET itself.
    "integration/Python-3.12.5.tgz.sigstore": "accept",
}


def trust_root(case: dict[str, Any]) -> TrustRoot:
    trust = case["trust"]
    if trust.startswith("trust/staging/trusted_root.json with"):
        document = json.loads(asset("sigstore/tsa/trust_config.json").read_text())["trustedRoot"]
        return TrustRoot.from_bytes(json.dumps(document).encode(), "tsa/trust_config.json")
    return TrustRoot.load(asset(f"sigstore/{trust}"))


def subject_digest(case: dict[str, Any]) -> str:
    if case["content"] == "dsseEnvelope":
        return DSSE_SUBJECT
    if case.get("artifact"):
        data = asset(f"sigstore/{case['artifact']}").read_bytes()
        assert hashlib.sha256(data).hexdigest() == case["artifact_sha256"]
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return "sha256:" + case["message_digest_sha256"]


def authority(case: dict[str, Any], *, subject: str | None = None) -> KeylessAuthority:
    sans = case.get("cert_san") or ["nobody@example.com"]
    return KeylessAuthority(
        "signer",
        trust_root(case),
        issuer=case.get("cert_oidc_issuer") or "https://issuer.example",
        subject=subject or sans[0],
    )


@pytest.mark.parametrize("case", CASES, ids=lambda case: case["bundle"])
def test_bundle_case(case: dict[str, Any]) -> None:
    document = asset(f"sigstore/{case['bundle']}").read_bytes()
    expected = OVERRIDES.get(case["bundle"], case["expected"])

    if expected == "reject":
        with pytest.raises(SignatureVerificationError):
            verify_bundle(document, subject_digest(case), authority(case))
        return
    verified = verify_bundle(document, subject_digest(case), authority(case))
    assert verified.subject == case["cert_san"][0]
    assert verified.issuer == case["cert_oidc_issuer"]
    assert verified.media_type == case["media_type"]


@pytest.mark.parametrize(
    "case",
    [case for case in CASES if OVERRIDES.get(case["bundle"], case["expected"]) == "accept"],
    ids=lambda case: case["bundle"],
)
def test_bundle_wrong_identity_rejected(case: dict[str, Any]) -> None:
    document = asset(f"sigstore/{case['bundle']}").read_bytes()

    with pytest.raises(SignatureVerificationError, match="subject does not match") as caught:
        verify_bundle(document, subject_digest(case), authority(case, subject="eve@example.com"))
    assert caught.value.check == "identity"


@pytest.mark.parametrize(
    "case",
    [case for case in CASES if OVERRIDES.get(case["bundle"], case["expected"]) == "accept"],
    ids=lambda case: case["bundle"],
)
def test_bundle_other_digest_rejected(case: dict[str, Any]) -> None:
    document = asset(f"sigstore/{case['bundle']}").read_bytes()

    with pytest.raises(SignatureVerificationError) as caught:
        verify_bundle(document, "sha256:" + "0" * 64, authority(case))
    assert caught.value.check in ("subject-digest", "bundle")


def test_set_only_v01_bundle_verified_by_own_code() -> None:
    case = next(item for item in CASES if item["bundle"].startswith("integration/"))
    document = asset(f"sigstore/{case['bundle']}").read_bytes()
    assert json.loads(document)["mediaType"] == BUNDLE_V01

    verified = verify_bundle(document, subject_digest(case), authority(case))

    assert verified.subject == "thomas@python.org"
    assert verified.integrated_time == 1722976367


def test_production_bundle_rejected_with_staging_root() -> None:
    case = next(item for item in CASES if item["bundle"] == "bundle_v3_github.whl.sigstore")
    document = asset(f"sigstore/{case['bundle']}").read_bytes()
    staging = KeylessAuthority(
        "signer",
        TrustRoot.staging(),
        issuer=case["cert_oidc_issuer"],
        subject=case["cert_san"][0],
    )

    with pytest.raises(SignatureVerificationError):
        verify_bundle(document, subject_digest(case), staging)


def test_media_types_include_both_spellings() -> None:
    assert "application/vnd.dev.sigstore.bundle.v0.3+json" in BUNDLE_MEDIA_TYPES
    assert is_bundle_media_type("application/vnd.dev.sigstore.bundle+json;version=0.3")
    assert is_bundle_media_type("application/vnd.dev.sigstore.bundle+json; version=0.1")
    assert not is_bundle_media_type("application/vnd.dev.sigstore.bundle+json;version=0.4")
