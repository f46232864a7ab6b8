"""Registry tokens the gate issues and checks: ES256 JWTs in the Docker token format.

An access token has `iss`, `sub` (the identity name), `aud` (the service), `exp`, `nbf`, `iat`,
`jti` and `access: [{type, name, actions}]`. Private claims tie it to its credential, so that it
stops working when that credential goes away: `rgw_kind` (`oidc` or `static`), `rgw_policies` (the
OIDC trust policies) or `rgw_token` (the static token id). A refresh token (OAuth2
`access_type=offline`) has header `typ: rgw-refresh+jwt`, claim `rgw_use: refresh`, no `access`,
and for OIDC identities the verified scalar claims in `rgw_claims`, so that grants are evaluated
again at each refresh.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from regward.auth.errors import AuthenticationError
from regward.auth.grants import Identity, IdentityKind
from regward.auth.jose import check_time_claims, read_unverified, verify_signature
from regward.auth.keys import SigningKeyRing
from regward.auth.scope import ResourceScope

logger = logging.getLogger(__name__)

ALGORITHM = "ES256"
REFRESH_TYPE = "rgw-refresh+jwt"
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class IssuedToken:
    """A signed token and its validity."""

    token: str = field(repr=False)
    issued_at: float
    expires_in: int


@dataclass(frozen=True)
class AccessToken:
    """A verified access token."""

    subject: str
    """The identity name from `sub`."""
    kind: IdentityKind
    expires: float
    access: Mapping[tuple[str, str], frozenset[str]]
    """(type, name) → granted actions."""
    policies: tuple[str, ...] = ()
    token_id: str | None = None

    def allows(self, resource_type: str, name: str, action: str) -> bool:
        """Return whether the access list grants `action` on the resource."""
        return action in self.access.get((resource_type, name), frozenset())


@dataclass(frozen=True)
class RefreshGrant:
    """A verified refresh token: who it was issued to and until when it is valid."""

    subject: str
    kind: IdentityKind
    expires: float
    policies: tuple[str, ...] = ()
    token_id: str | None = None
    issuer: str | None = None
    """The OIDC issuer of the original ID token."""
    claims: Mapping[str, Any] = field(default_factory=dict)


def _identity_claims(identity: Identity) -> dict[str, Any]:
    claims: dict[str, Any] = {"rgw_kind": str(identity.kind)}
    if identity.kind is IdentityKind.OIDC:
        claims["rgw_policies"] = list(identity.policies)
    else:
        claims["rgw_token"] = identity.token_id
    return claims


def _kind_of(claims: Mapping[str, Any]) -> tuple[IdentityKind, tuple[str, ...], str | None]:
    kind_text = claims.get("rgw_kind")
    if kind_text == "oidc":
        policies = claims.get("rgw_policies")
        if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
            raise AuthenticationError("invalid token: rgw_policies is not a list of names")
        return IdentityKind.OIDC, tuple(policies), None
    if kind_text == "static":
        token_id = claims.get("rgw_token")
        if not isinstance(token_id, str):
            raise AuthenticationError("invalid token: rgw_token is not a token id")
        return IdentityKind.STATIC, (), token_id
    raise AuthenticationError("invalid token: unknown rgw_kind")


class TokenIssuer:
    """Signs and verifies the gate's own access and refresh tokens."""

    def __init__(
        self,
        keys: SigningKeyRing,
        *,
        issuer: str,
        service: str,
        skew: float,
        clock: Callable[[], float],
    ) -> None:
        """Configure issuing.

        Args:
            keys: the signing key ring.
            issuer: the `iss` of issued tokens.
            service: the `aud` of issued tokens.
            skew: seconds of tolerance on `exp`, `nbf` and `iat`.
            clock: returns the current Unix time.
        """
        self._keys = keys
        self._issuer = issuer
        self._service = service
        self._skew = skew
        self._clock = clock
        self._cache_lock = threading.Lock()
        self._verified: OrderedDict[bytes, tuple[str, dict[str, Any]]] = OrderedDict()

    def issue_access(
        self, identity: Identity, scopes: list[ResourceScope], lifetime: int
    ) -> IssuedToken:
        """Sign an access token for `identity` granting exactly `scopes`."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": identity.name,
            "aud": self._service,
            "exp": now + lifetime,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": [scope.access_entry() for scope in scopes],
        }
        claims.update(_identity_claims(identity))
        return IssuedToken(self._sign(claims, "JWT"), float(now), lifetime)

    def issue_refresh(self, identity: Identity, lifetime: int) -> IssuedToken:
        """Sign a refresh token for `identity`, valid for `lifetime` seconds."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": identity.name,
            "aud": self._service,
            "exp": now + lifetime,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "rgw_use": "refresh",
        }
        claims.update(_identity_claims(identity))
        if identity.kind is IdentityKind.OIDC:
            claims["rgw_claims"] = dict(identity.claims)
        return IssuedToken(self._sign(claims, REFRESH_TYPE), float(now), lifetime)

    def _sign(self, claims: dict[str, Any], token_type: str) -> str:
        key = self._keys.signing_key()
        return jwt.encode(
            claims,
            key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": token_type},
        )

    def _verified_claims(self, token: str) -> tuple[str, dict[str, Any]]:
        """Check header, signature, issuer and audience, with a cache of recent results."""
        cache_key = hashlib.sha256(token.encode()).digest()
        with self._cache_lock:
            cached = self._verified.get(cache_key)
            if cached is not None:
                self._verified.move_to_end(cache_key)
                return cached

        header, _ = read_unverified(token)
        if header.get("alg") != ALGORITHM:
            raise AuthenticationError(f"invalid token: algorithm {header.get('alg')!r}")
        kid = header.get("kid")
        public_key = self._keys.verification_key(kid) if isinstance(kid, str) else None
        if public_key is None:
            raise AuthenticationError("invalid token: unknown or retired signing key")
        claims = verify_signature(token, public_key, ALGORITHM)
        if claims.get("iss") != self._issuer:
            raise AuthenticationError("invalid token: wrong issuer")
        if claims.get("aud") != self._service:
            raise AuthenticationError("invalid token: issued for another service")
        result = (str(header.get("typ", "")), claims)

        with self._cache_lock:
            self._verified[cache_key] = result
            while len(self._verified) > _CACHE_SIZE:
                self._verified.popitem(last=False)
        return result

    def verify_access(self, token: str) -> AccessToken:
        """Verify an access token presented as `Authorization: Bearer`.

        Raises:
            AuthenticationError: bad signature, unknown key, wrong issuer or audience, expired, a
                refresh token, or a malformed access list.
        """
        token_type, claims = self._verified_claims(token)
        if token_type == REFRESH_TYPE or "rgw_use" in claims:
            raise AuthenticationError("invalid token: a refresh token is not an access token")
        expires = check_time_claims(claims, self._clock(), self._skew)
        subject = claims.get("sub")
        if not isinstance(subject, str):
            raise AuthenticationError("invalid token: missing sub")
        kind, policies, token_id = _kind_of(claims)
        access: dict[tuple[str, str], frozenset[str]] = {}
        entries = claims.get("access", [])
        if not isinstance(entries, list):
            raise AuthenticationError("invalid token: access is not a list")
        for entry in entries:
            if not isinstance(entry, dict):
                raise AuthenticationError("invalid token: access entry is not an object")
            resource_type, name, actions = (
                entry.get("type"),
                entry.get("name"),
                entry.get("actions"),
            )
            if not isinstance(resource_type, str) or not isinstance(name, str):
                raise AuthenticationError("invalid token: access entry without type or name")
            if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
                raise AuthenticationError("invalid token: access actions are not strings")
            key = (resource_type, name)
            access[key] = access.get(key, frozenset()) | frozenset(actions)
        return AccessToken(subject, kind, expires, access, policies, token_id)

    def verify_refresh(self, token: str) -> RefreshGrant:
        """Verify a refresh token presented with `grant_type=refresh_token`.

        Raises:
            AuthenticationError: not a valid, unexpired refresh token of this gate.
        """
        token_type, claims = self._verified_claims(token)
        if token_type != REFRESH_TYPE or claims.get("rgw_use") != "refresh":
            raise AuthenticationError("invalid refresh token")
        expires = check_time_claims(claims, self._clock(), self._skew)
        subject = claims.get("sub")
        if not isinstance(subject, str):
            raise AuthenticationError("invalid refresh token: missing sub")
        kind, policies, token_id = _kind_of(claims)
        oidc_claims = claims.get("rgw_claims", {})
        if not isinstance(oidc_claims, dict):
            raise AuthenticationError("invalid refresh token: rgw_claims is not an object")
        issuer = oidc_claims.get("iss")
        if kind is IdentityKind.OIDC and not isinstance(issuer, str):
            raise AuthenticationError("invalid refresh token: missing OIDC claims")
        return RefreshGrant(
            subject=subject,
            kind=kind,
            expires=expires,
            policies=policies,
            token_id=token_id,
            issuer=issuer if isinstance(issuer, str) else None,
            claims=oidc_claims,
        )
