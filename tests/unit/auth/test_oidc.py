"""CI OIDC token verification against a local issuer: accepted tokens and hostile ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regward.auth.config import load_auth_settings
from regward.auth.errors import OidcVerificationError
from regward.auth.grants import IdentityKind
from regward.auth.oidc import OidcVerifier
from regward.auth.scope import Action
from tests.unit.auth.conftest import Clock, auth_section
from tests.unit.auth.issuer import LocalIssuer, github_claims


def _verifier(tmp_path: Path, issuer: LocalIssuer, clock: Clock, **extra: Any) -> OidcVerifier:
    settings = load_auth_settings(auth_section(issuer, **extra), tmp_path)
    return OidcVerifier(settings.oidc, skew=settings.clock_skew, clock=clock)


@pytest.fixture
def verifier(tmp_path: Path, oidc_issuer: LocalIssuer, clock: Clock) -> OidcVerifier:
    return _verifier(tmp_path, oidc_issuer, clock)


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_valid_token_accepted(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock, algorithm: str
) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now), algorithm=algorithm)
    identity = verifier.verify(token)
    assert identity.kind is IdentityKind.OIDC
    assert identity.name == "ci:repo:acme/app:ref:refs/heads/main"
    assert identity.policies == ("ci",)
    assert identity.allowed_actions(
        "test/app", protected=lambda r: False, push_requires_oidc=False
    ) == {Action.PULL, Action.PUSH}
    assert identity.allowed_actions(
        "test/shared", protected=lambda r: False, push_requires_oidc=False
    ) == {Action.PULL}
    assert (
        identity.allowed_actions("other/app", protected=lambda r: False, push_requires_oidc=False)
        == frozenset()
    )


def test_pss_accepted_when_jwk_names_no_alg(tmp_path: Path, clock: Clock) -> None:
    issuer = LocalIssuer(tmp_path / "pss")
    document = issuer.public_jwks()
    del document["keys"][0]["alg"]
    issuer.write_jwks(document)
    verifier = _verifier(tmp_path, issuer, clock)
    token = issuer.mint(github_claims(now=clock.now, issuer=issuer.issuer), algorithm="PS256")
    assert verifier.verify(token).name.startswith("ci:")


def test_feature_branch_gets_only_matching_grant(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now, ref="refs/heads/feature"))
    identity = verifier.verify(token)
    allowed = identity.allowed_actions(
        "test/app", protected=lambda r: False, push_requires_oidc=False
    )
    assert allowed == frozenset()
    shared = identity.allowed_actions(
        "test/shared", protected=lambda r: False, push_requires_oidc=False
    )
    assert shared == {Action.PULL}


def test_audience_list_accepted(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now, audience=["other", "regward"]))
    assert verifier.verify(token).name.startswith("ci:")


def test_skew_tolerated(verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now, lifetime=300))
    clock.advance(300 + 30)
    assert verifier.verify(token).name.startswith("ci:")


def _rejected(verifier: OidcVerifier, token: str, message: str) -> None:
    with pytest.raises(OidcVerificationError, match=message):
        verifier.verify(token)


def test_expired_rejected(verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now - 3600, lifetime=300))
    _rejected(verifier, token, "token expired")


def test_not_yet_valid_rejected(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now), nbf=int(clock.now) + 600)
    _rejected(verifier, token, r"not valid for another .* \(nbf\)")


def test_issued_in_future_rejected(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now + 600))
    _rejected(verifier, token, r"issued .* in the future|not valid for another")


def test_missing_exp_rejected(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    claims = github_claims(now=clock.now)
    del claims["exp"]
    _rejected(verifier, oidc_issuer.mint(claims), "missing exp")


def test_wrong_audience_rejected(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now, audience="sigstore"))
    _rejected(verifier, token, "audience 'sigstore' is not accepted")


def test_wrong_issuer_rejected(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now, issuer="https://evil.example.test"))
    _rejected(verifier, token, "no trust policy for issuer 'https://evil.example.test'")


def test_alg_none_rejected(verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock) -> None:
    token = oidc_issuer.forge_alg_none(github_claims(now=clock.now))
    _rejected(verifier, token, "algorithm 'none' is not accepted")


def test_hs256_with_public_key_rejected(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    token = oidc_issuer.forge_hs256_with_public_key(github_claims(now=clock.now))
    _rejected(verifier, token, "algorithm 'HS256' is not accepted")


def test_unknown_kid_rejected(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now), kid="rotated-away")
    _rejected(verifier, token, "unknown signing key id 'rotated-away'")


def test_key_algorithm_mismatch_rejected(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    # An ES256 signature presented under the RSA key's id must not be checked with that key.
    token = oidc_issuer.mint(github_claims(now=clock.now), algorithm="ES256", kid="rsa-1")
    _rejected(verifier, token, "JWK alg is 'RS256', but the token header has alg 'ES256'")


def test_tampered_payload_rejected(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    good = oidc_issuer.mint(github_claims(now=clock.now, ref="refs/heads/feature"))
    forged = oidc_issuer.mint(github_claims(now=clock.now))
    header, _, signature = good.split(".")
    tampered = ".".join([header, forged.split(".")[1], signature])
    _rejected(verifier, tampered, "signature")


def test_signed_by_other_key_rejected(
    tmp_path: Path, verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    impostor = LocalIssuer(tmp_path / "impostor")
    token = impostor.mint(github_claims(now=clock.now))
    _rejected(verifier, token, "signature")


def test_no_matching_grant_rejected(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now, repository="evil/app"))
    _rejected(verifier, token, r"matches no grant of trust policies ci")


def test_missing_sub_rejected(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    claims = github_claims(now=clock.now)
    del claims["sub"]
    _rejected(verifier, oidc_issuer.mint(claims), "missing sub")


def test_non_string_claim_never_matches(
    verifier: OidcVerifier, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now), repository=["acme/app"])
    _rejected(verifier, token, "matches no grant")


@pytest.mark.parametrize("garbage", ["", "a.b", "not-a-jwt", "a.b.c", "e30.e30.", "x" * 20000])
def test_garbage_rejected(verifier: OidcVerifier, garbage: str) -> None:
    with pytest.raises(OidcVerificationError):
        verifier.verify(garbage)


def test_jwks_file_rotation_picked_up(
    tmp_path: Path, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    issuer = LocalIssuer(tmp_path / "rotating")
    verifier = _verifier(tmp_path, issuer, clock)
    assert verifier.verify(issuer.mint(github_claims(now=clock.now, issuer=issuer.issuer)))

    document = issuer.public_jwks()
    for key in document["keys"]:
        key["kid"] = key["kid"] + "-v2"
    issuer.write_jwks(document)
    # Force a new modification time even on coarse file systems.
    import os

    stat = issuer.jwks_path.stat()
    os.utime(issuer.jwks_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    rotated = issuer.mint(github_claims(now=clock.now, issuer=issuer.issuer), kid="rsa-1-v2")
    assert verifier.verify(rotated).name.startswith("ci:")
    with pytest.raises(OidcVerificationError, match="unknown signing key id 'rsa-1'"):
        verifier.verify(issuer.mint(github_claims(now=clock.now, issuer=issuer.issuer)))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_weak_rsa_key_rejected(tmp_path: Path, clock: Clock) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    issuer = LocalIssuer(tmp_path / "weak")
    issuer.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    issuer.write_jwks()
    verifier = _verifier(tmp_path, issuer, clock)
    token = issuer.mint(github_claims(now=clock.now, issuer=issuer.issuer))
    with pytest.raises(OidcVerificationError, match="RSA key has 1024 bits"):
        verifier.verify(token)


def test_jwk_for_encryption_rejected(tmp_path: Path, clock: Clock) -> None:
    issuer = LocalIssuer(tmp_path / "enc")
    document = issuer.public_jwks()
    document["keys"][0]["use"] = "enc"
    issuer.write_jwks(document)
    verifier = _verifier(tmp_path, issuer, clock)
    token = issuer.mint(github_claims(now=clock.now, issuer=issuer.issuer))
    with pytest.raises(OidcVerificationError, match="JWK use is 'enc'"):
        verifier.verify(token)


def test_invalid_jwks_file_reported(tmp_path: Path, clock: Clock) -> None:
    issuer = LocalIssuer(tmp_path / "broken")
    verifier = _verifier(tmp_path, issuer, clock)
    issuer.jwks_path.write_text(json.dumps({"not": "jwks"}))
    token = issuer.mint(github_claims(now=clock.now, issuer=issuer.issuer))
    with pytest.raises(OidcVerificationError, match="has no `keys` list"):
        verifier.verify(token)
