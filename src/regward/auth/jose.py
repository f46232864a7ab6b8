"""JWT helpers shared by the token issuer and the OIDC verifier.

PyJWT checks signatures here, but the time claims are checked against an injected clock, so tests
pin time and every verifier applies the same skew rules.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import jwt
from jwt.api_jws import PyJWS

from regward.auth.errors import AuthenticationError

logger = logging.getLogger(__name__)

MAX_JWT_BYTES = 16 * 1024
"""Longest JWT accepted; CI ID tokens are 1–3 KiB."""

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Signature algorithms accepted from OIDC issuers; `none` and the HMAC family are not in it."""


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, raising `AuthenticationError` on invalid input."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise AuthenticationError("invalid JWT: bad base64url encoding") from exc


def b64url_encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def looks_like_jwt(text: str) -> bool:
    """Return whether `text` has the three dot-separated parts of a compact JWS."""
    return text.count(".") == 2 and len(text) <= MAX_JWT_BYTES


def read_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode the header and claims of a JWT without checking its signature.

    The result only selects the issuer and key; nothing in it may be trusted until
    `verify_signature` succeeds.

    Raises:
        AuthenticationError: too long, not three parts, or a header or payload that is not a JSON
            object.
    """
    if len(token) > MAX_JWT_BYTES:
        raise AuthenticationError(f"invalid JWT: {len(token)} bytes, more than {MAX_JWT_BYTES}")
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthenticationError("invalid JWT: expected three dot-separated parts")
    decoded = []
    for label, part in (("header", parts[0]), ("payload", parts[1])):
        try:
            value = json.loads(b64url_decode(part))
        except (ValueError, UnicodeDecodeError) as exc:
            raise AuthenticationError(f"invalid JWT: {label} is not JSON") from exc
        if not isinstance(value, dict):
            raise AuthenticationError(f"invalid JWT: {label} is not a JSON object")
        decoded.append(value)
    return decoded[0], decoded[1]


def verify_signature(token: str, key: Any, algorithm: str) -> dict[str, Any]:
    """Verify the JWS signature of `token` with `key` for exactly `algorithm`, returning the claims.

    Raises:
        AuthenticationError: the signature does not verify or the header names another algorithm.
    """
    try:
        decoded = PyJWS().decode_complete(token, key=key, algorithms=[algorithm])
    except jwt.InvalidTokenError as exc:
        raise AuthenticationError(f"invalid JWT signature: {exc}") from exc
    try:
        claims = json.loads(decoded["payload"])
    except ValueError as exc:
        raise AuthenticationError("invalid JWT: payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise AuthenticationError("invalid JWT: payload is not a JSON object")
    return claims


def _numeric(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise AuthenticationError(f"invalid JWT: missing {name} claim")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationError(f"invalid JWT: {name} is not a number")
    return float(value)


def check_time_claims(claims: Mapping[str, Any], now: float, skew: float) -> float:
    """Check `exp`, `nbf` and `iat` against `now` with `skew` seconds of tolerance.

    `exp` and `iat` are required, `nbf` is optional.

    Raises:
        AuthenticationError: expired, not yet valid, issued in the future, or a missing claim.

    Returns:
        The `exp` value.
    """
    expires = _numeric(claims, "exp", required=True)
    issued = _numeric(claims, "iat", required=True)
    not_before = _numeric(claims, "nbf", required=False)
    assert expires is not None and issued is not None
    if now > expires + skew:
        raise AuthenticationError(f"token expired {int(now - expires)} s ago")
    if not_before is not None and now < not_before - skew:
        raise AuthenticationError(f"token not valid for another {int(not_before - now)} s (nbf)")
    if now < issued - skew:
        raise AuthenticationError(f"token issued {int(issued - now)} s in the future (iat)")
    return expires


def audience_matches(claims: Mapping[str, Any], accepted: set[str] | frozenset[str]) -> bool:
    """Return whether the `aud` claim (a string or a list of strings) names an accepted audience."""
    audience = claims.get("aud")
    if isinstance(audience, str):
        return audience in accepted
    if isinstance(audience, list):
        return any(isinstance(item, str) and item in accepted for item in audience)
    return False


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """Compute the RFC 7638 SHA-256 thumbprint of an EC, RSA or OKP public JWK."""
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    required = members[str(jwk["kty"])]
    canonical = json.dumps(
        {name: jwk[name] for name in required}, separators=(",", ":"), sort_keys=True
    )
    return b64url_encode(hashlib.sha256(canonical.encode()).digest())
