"""A local OIDC issuer for tests: its own keys, a JWKS file, and GitHub-Actions-like ID tokens.

Keys are generated when the issuer is built, so nothing secret is checked in. `mint` signs any
claims with any of the issuer's keys, and `forge_*` build the hostile tokens the tests must reject.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

ISSUER = "https://token.ci.example.test"
AUDIENCE = "regward"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def github_claims(
    *,
    repository: str = "acme/app",
    ref: str = "refs/heads/main",
    now: float | None = None,
    lifetime: int = 300,
    audience: str | list[str] = AUDIENCE,
    issuer: str = ISSUER,
) -> dict[str, Any]:
    """Return claims shaped like a GitHub Actions ID token for `repository` at `ref`."""
    issued = int(time.time() if now is None else now)
    owner = repository.split("/")[0]
    return {
        "iss": issuer,
        "aud": audience,
        "sub": f"repo:{repository}:ref:{ref}",
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": f"jti-{issued}-{repository}",
        "repository": repository,
        "repository_owner": owner,
        "repository_id": "123456",
        "repository_owner_id": "654321",
        "ref": ref,
        "ref_type": "branch",
        "sha": "0123456789abcdef0123456789abcdef01234567",
        "workflow": "release",
        "job_workflow_ref": f"{repository}/.github/workflows/release.yml@{ref}",
        "event_name": "push",
        "actor": "octocat",
        "run_id": "42",
        "run_attempt": "1",
        "runner_environment": "github-hosted",
    }


@dataclass
class LocalIssuer:
    """An OIDC issuer with an RSA, an EC P-256 and an Ed25519 key, published in `jwks_path`."""

    directory: Path
    issuer: str = ISSUER
    rsa_key: rsa.RSAPrivateKey = field(init=False)
    ec_key: ec.EllipticCurvePrivateKey = field(init=False)
    ed_key: ed25519.Ed25519PrivateKey = field(init=False)
    jwks_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.ed_key = ed25519.Ed25519PrivateKey.generate()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.jwks_path = self.directory / "jwks.json"
        self.write_jwks()

    def public_jwks(self) -> dict[str, Any]:
        """Return the JWKS document with the three public keys."""
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        rsa_jwk.update({"kid": "rsa-1", "use": "sig", "alg": "RS256"})
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec_key.public_key()))
        ec_jwk.update({"kid": "ec-1", "use": "sig", "alg": "ES256"})
        ed_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.ed_key.public_key()))
        ed_jwk.update({"kid": "ed-1", "use": "sig"})
        return {"keys": [rsa_jwk, ec_jwk, ed_jwk]}

    def write_jwks(self, document: dict[str, Any] | None = None) -> None:
        """Write the JWKS file, by default with the issuer's own public keys."""
        self.jwks_path.write_text(json.dumps(document or self.public_jwks()))

    def mint(
        self,
        claims: dict[str, Any] | None = None,
        *,
        algorithm: str = "RS256",
        kid: str | None = None,
        **overrides: Any,
    ) -> str:
        """Sign GitHub-like claims (with `overrides` applied) with the key for `algorithm`."""
        payload = dict(claims if claims is not None else github_claims(issuer=self.issuer))
        payload.update(overrides)
        key: Any
        if algorithm.startswith(("RS", "PS")):
            key, default_kid = self.rsa_key, "rsa-1"
        elif algorithm == "EdDSA":
            key, default_kid = self.ed_key, "ed-1"
        else:
            key, default_kid = self.ec_key, "ec-1"
        return jwt.encode(
            payload, key, algorithm=algorithm, headers={"kid": kid or default_kid, "typ": "JWT"}
        )

    def forge_alg_none(self, claims: dict[str, Any]) -> str:
        """Return an unsigned token with `alg: none`."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
        payload = _b64(json.dumps(claims).encode())
        return f"{header}.{payload}."

    def forge_hs256_with_public_key(self, claims: dict[str, Any]) -> str:
        """Return a token HMAC-signed with the issuer's public key PEM as the shared secret."""
        import hashlib
        import hmac

        secret = self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"
