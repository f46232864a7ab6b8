"""CI OIDC federation: verify an ID token against the trust policies and map its claims to grants.

A CI job logs in with username `oidc` and its OIDC ID token as the password. The token is accepted
when a trust policy names its issuer and one of its audiences, its signature verifies with a key of
the issuer's JWKS, its time claims are valid, and a grant of those policies matches its claims.
Issuer keys come from a `jwksFile`, re-read when the file changes, or from a `jwksUrl`. A URL is
fetched with a timeout and a size cap and cached for the policy's `jwksCacheLifetime`. A token that
names an unknown `kid` causes one more fetch, and fetches are at least `MIN_REFETCH_INTERVAL`
seconds apart.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from regward import __version__
from regward.auth.config import OidcGrant, OidcTrustPolicy
from regward.auth.errors import AuthenticationError, JwksFetchError, OidcVerificationError
from regward.auth.grants import Grant, Identity, IdentityKind
from regward.auth.jose import (
    ASYMMETRIC_ALGORITHMS,
    audience_matches,
    check_time_claims,
    read_unverified,
    verify_signature,
)
from regward.auth.scope import glob_match

logger = logging.getLogger(__name__)

OIDC_USERNAME = "oidc"
"""The username that marks the password as a CI OIDC ID token."""

JWKS_TIMEOUT = 5.0
"""Seconds allowed for each connect and read of a JWKS fetch."""
MAX_JWKS_BYTES = 256 * 1024
"""Largest JWKS document accepted."""
MAX_JWKS_KEYS = 64
"""Most keys read from one JWKS; the rest are ignored."""
MIN_REFETCH_INTERVAL = 30.0
"""Shortest time between two fetches of one JWKS URL, also after a failed fetch."""
MIN_RSA_BITS = 2048

_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_OKP_CURVES = ("Ed25519", "Ed448")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _parse_jwks(data: bytes, origin: str) -> dict[str, dict[str, Any]]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwksFetchError(f"JWKS {origin} is not JSON", url=origin) from exc
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise JwksFetchError(f"JWKS {origin} has no `keys` list", url=origin)
    parsed: dict[str, dict[str, Any]] = {}
    for index, key in enumerate(keys[:MAX_JWKS_KEYS]):
        if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
            logger.debug("JWKS %s: skipping entry %d without kty", origin, index)
            continue
        kid = key.get("kid")
        parsed[kid if isinstance(kid, str) else f"#{index}"] = key
    return parsed


class JwksSource:
    """The public keys of one OIDC issuer, from a file or a URL, with bounded caching."""

    def __init__(
        self,
        *,
        jwks_file: Path | None = None,
        jwks_url: str | None = None,
        cache_lifetime: float,
        clock: Callable[[], float],
    ) -> None:
        """Configure the source; nothing is read until the first token needs a key.

        Args:
            jwks_file: a local JWKS document, re-read when its modification time changes.
            jwks_url: an https (or loopback http) JWKS URL.
            cache_lifetime: seconds fetched keys are used before they are fetched again.
            clock: returns the current Unix time.
        """
        if (jwks_file is None) == (jwks_url is None):
            raise ValueError("expected exactly one of jwks_file or jwks_url")
        self._file = jwks_file
        self._url = jwks_url
        self._cache_lifetime = cache_lifetime
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, dict[str, Any]] | None = None
        self._fetched_at = float("-inf")
        self._attempted_at = float("-inf")
        self._file_mtime: int | None = None

    @property
    def origin(self) -> str:
        """The file path or URL, for messages."""
        return str(self._file) if self._file is not None else str(self._url)

    def find_key(self, kid: str | None) -> dict[str, Any]:
        """Return the JWK for `kid`, reading or fetching the JWKS as needed.

        A token without `kid` is accepted only when the JWKS contains exactly one key.

        Raises:
            JwksFetchError: the JWKS cannot be read or fetched.
            OidcVerificationError: no key has this `kid`, even after one fresh read.
        """
        with self._lock:
            keys = self._current_keys(force=False)
            key = self._select(keys, kid)
            if key is None and self._may_refresh():
                keys = self._current_keys(force=True)
                key = self._select(keys, kid)
            if key is None:
                raise OidcVerificationError(
                    f"unknown signing key id {kid!r} for JWKS {self.origin}"
                )
            return key

    @staticmethod
    def _select(keys: Mapping[str, dict[str, Any]], kid: str | None) -> dict[str, Any] | None:
        if kid is None:
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)

    def _may_refresh(self) -> bool:
        if self._file is not None:
            return True
        return self._clock() - self._attempted_at >= MIN_REFETCH_INTERVAL

    def _current_keys(self, *, force: bool) -> dict[str, dict[str, Any]]:
        if self._file is not None:
            return self._read_file(self._file)
        now = self._clock()
        fresh = self._keys is not None and 0 <= now - self._fetched_at < self._cache_lifetime
        if fresh and not force and self._keys is not None:
            return self._keys
        if not force and now - self._attempted_at < MIN_REFETCH_INTERVAL and self._keys is None:
            raise JwksFetchError(
                f"JWKS {self.origin} failed recently; next fetch allowed within "
                f"{int(MIN_REFETCH_INTERVAL)} s",
                url=self.origin,
            )
        self._attempted_at = now
        assert self._url is not None
        try:
            self._keys = _parse_jwks(self._fetch(self._url), self._url)
        except JwksFetchError:
            # Expired keys are dropped so a fetch failure cannot extend their life.
            if not fresh:
                self._keys = None
            raise
        self._fetched_at = now
        logger.info("fetched JWKS %s: %d keys", self._url, len(self._keys))
        return self._keys

    def _read_file(self, path: Path) -> dict[str, dict[str, Any]]:
        try:
            mtime = path.stat().st_mtime_ns
            if self._keys is not None and mtime == self._file_mtime:
                return self._keys
            with path.open("rb") as handle:
                data = handle.read(MAX_JWKS_BYTES + 1)
        except OSError as exc:
            raise JwksFetchError(
                f"cannot read JWKS file {path}: {exc.strerror}", url=str(path)
            ) from exc
        if len(data) > MAX_JWKS_BYTES:
            raise JwksFetchError(
                f"JWKS file {path} is larger than {MAX_JWKS_BYTES} bytes", url=str(path)
            )
        self._keys = _parse_jwks(data, str(path))
        self._file_mtime = mtime
        return self._keys

    @staticmethod
    def _fetch(url: str) -> bytes:
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked by check_jwks_url
            url, headers={"Accept": "application/json", "User-Agent": f"regward/{__version__}"}
        )
        try:
            with _OPENER.open(request, timeout=JWKS_TIMEOUT) as response:
                status = response.status
                data: bytes = response.read(MAX_JWKS_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise JwksFetchError(
                f"fetching JWKS {url} failed: HTTP {exc.code}", url=url, status_code=exc.code
            ) from exc
        except (OSError, ValueError) as exc:
            raise JwksFetchError(f"fetching JWKS {url} failed: {exc}", url=url) from exc
        if status != 200:
            raise JwksFetchError(
                f"fetching JWKS {url} failed: HTTP {status}", url=url, status_code=status
            )
        if len(data) > MAX_JWKS_BYTES:
            raise JwksFetchError(f"JWKS {url} is larger than {MAX_JWKS_BYTES} bytes", url=url)
        return data


def _check_key_for_algorithm(jwk: Mapping[str, Any], algorithm: str) -> None:
    """Reject a JWK whose type, curve, size, `use` or `alg` does not fit `algorithm`."""
    if jwk.get("use", "sig") != "sig":
        raise OidcVerificationError(f"JWK use is {jwk.get('use')!r}, expected 'sig'")
    if "alg" in jwk and jwk["alg"] != algorithm:
        raise OidcVerificationError(
            f"JWK alg is {jwk['alg']!r}, but the token header has alg {algorithm!r}"
        )
    kty = jwk.get("kty")
    if algorithm.startswith(("RS", "PS")):
        expected_kty, curve_ok = "RSA", True
    elif algorithm in _CURVES:
        expected_kty, curve_ok = "EC", jwk.get("crv") == _CURVES[algorithm]
    else:
        expected_kty, curve_ok = "OKP", jwk.get("crv") in _OKP_CURVES
    if kty != expected_kty or not curve_ok:
        raise OidcVerificationError(
            f"JWK type {kty!r} curve {jwk.get('crv')!r} does not fit algorithm {algorithm}"
        )


def _public_key(jwk: Mapping[str, Any], algorithm: str) -> Any:
    _check_key_for_algorithm(jwk, algorithm)
    public_members = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
    try:
        key = jwt.PyJWK(public_members, algorithm=algorithm).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
        raise OidcVerificationError(f"unusable JWK for {algorithm}: {exc}") from exc
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise OidcVerificationError(f"RSA key has {key.key_size} bits, expected {MIN_RSA_BITS}+")
    return key


def _claim_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return None


def grant_matches(grant: OidcGrant, claims: Mapping[str, Any]) -> bool:
    """Return whether every claim the grant lists is present in `claims` and matches its glob.

    Claims that are not strings, numbers or booleans never match.
    """
    for name, pattern in grant.claims.items():
        text = _claim_text(claims.get(name))
        if text is None or not glob_match(pattern, text):
            return False
    return True


def scalar_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """Return the claims with string, number or boolean values: the ones grants can match."""
    return {k: v for k, v in claims.items() if _claim_text(v) is not None}


def grants_for_claims(
    policies: Sequence[OidcTrustPolicy], claims: Mapping[str, Any]
) -> tuple[tuple[str, ...], tuple[Grant, ...]]:
    """Evaluate the grants of `policies` against verified claims.

    Returns:
        The names of policies with at least one matching grant, and those grants.
    """
    names: list[str] = []
    grants: list[Grant] = []
    for policy in policies:
        matched = [g for g in policy.grants if grant_matches(g, claims)]
        if matched:
            names.append(policy.name)
            grants.extend(
                Grant(repositories=tuple(g.repositories), actions=frozenset(g.actions))
                for g in matched
            )
    return tuple(names), tuple(grants)


class OidcVerifier:
    """Verifies CI OIDC ID tokens against the configured trust policies."""

    def __init__(
        self,
        policies: Sequence[OidcTrustPolicy],
        *,
        skew: float,
        clock: Callable[[], float],
    ) -> None:
        """Build one `JwksSource` per distinct key source of the policies.

        Args:
            policies: trust policies in config order.
            skew: seconds of tolerance on `exp`, `nbf` and `iat`.
            clock: returns the current Unix time.
        """
        self._policies = tuple(policies)
        self._skew = skew
        self._clock = clock
        self._sources: dict[str, JwksSource] = {}
        shared: dict[tuple[str, str], JwksSource] = {}
        for policy in self._policies:
            location = (
                ("file", str(policy.jwks_file))
                if policy.jwks_file is not None
                else ("url", str(policy.jwks_url))
            )
            if location not in shared:
                shared[location] = JwksSource(
                    jwks_file=policy.jwks_file,
                    jwks_url=policy.jwks_url,
                    cache_lifetime=policy.jwks_cache_lifetime,
                    clock=clock,
                )
            self._sources[policy.name] = shared[location]

    @property
    def policies(self) -> tuple[OidcTrustPolicy, ...]:
        """The trust policies, in config order."""
        return self._policies

    def has_policy(self, name: str) -> bool:
        """Return whether a trust policy called `name` is configured."""
        return any(policy.name == name for policy in self._policies)

    def verify(self, token: str) -> Identity:
        """Verify a CI OIDC ID token and return the identity with its matching grants.

        Raises:
            OidcVerificationError: any check failed; the message names the check.
            JwksFetchError: the issuer's keys could not be read.

        Returns:
            An identity named `<policy>:<sub>` after the first policy with a matching grant.
        """
        # (1): read the header and issuer without trusting them, to choose the key source.
        # (2): reject algorithms other than the asymmetric ones (no `none`, no HS*).
        # (3): keep the policies that name this issuer.
        # (4): verify the signature with the issuer's key for the header's kid.
        # (5): check the audience, then exp/nbf/iat with skew, then that `sub` is present.
        # (6): evaluate the grants of the policies that accept this audience.
        try:
            header, unverified = read_unverified(token)
        except AuthenticationError as exc:
            raise OidcVerificationError(str(exc)) from exc

        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ASYMMETRIC_ALGORITHMS:
            raise OidcVerificationError(
                f"algorithm {algorithm!r} is not accepted, expected one of "
                f"{', '.join(sorted(ASYMMETRIC_ALGORITHMS))}"
            )

        issuer = unverified.get("iss")
        candidates = [p for p in self._policies if p.issuer == issuer]
        if not candidates:
            raise OidcVerificationError(f"no trust policy for issuer {str(issuer)[:200]!r}")

        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise OidcVerificationError("invalid JWT: kid is not a string")
        claims = None
        verified: list[OidcTrustPolicy] = []
        checked: dict[int, dict[str, Any] | None] = {}
        last_error: OidcVerificationError | None = None
        for policy in candidates:
            source = self._sources[policy.name]
            if id(source) not in checked:
                try:
                    checked[id(source)] = self._verify_with(source, token, kid, algorithm)
                except OidcVerificationError as exc:
                    last_error = exc
                    checked[id(source)] = None
            result = checked[id(source)]
            if result is not None:
                claims = result
                verified.append(policy)
        if claims is None:
            if last_error is not None:
                raise last_error
            raise OidcVerificationError(f"signature verification failed for issuer {issuer!r}")

        if claims.get("iss") != issuer:
            raise OidcVerificationError("issuer changed between header read and verification")
        accepting = [p for p in verified if audience_matches(claims, frozenset(p.audience))]
        if not accepting:
            raise OidcVerificationError(
                f"audience {str(claims.get('aud'))[:200]!r} is not accepted by any trust policy "
                f"for issuer {issuer!r}"
            )
        try:
            expires = check_time_claims(claims, self._clock(), self._skew)
        except AuthenticationError as exc:
            raise OidcVerificationError(f"OIDC {exc}") from exc
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise OidcVerificationError("invalid OIDC token: missing sub claim")

        names, grants = grants_for_claims(accepting, claims)
        if not grants:
            raise OidcVerificationError(
                f"OIDC subject {subject[:200]!r} matches no grant of trust policies "
                f"{', '.join(p.name for p in accepting)}"
            )
        logger.debug("verified OIDC token of %s via policies %s", subject, ", ".join(names))
        return Identity(
            name=f"{names[0]}:{subject}",
            kind=IdentityKind.OIDC,
            grants=grants,
            expires=expires,
            policies=names,
            claims=scalar_claims(claims),
        )

    def _verify_with(
        self, source: JwksSource, token: str, kid: str | None, algorithm: str
    ) -> dict[str, Any] | None:
        jwk = source.find_key(kid)
        key = _public_key(jwk, algorithm)
        try:
            return verify_signature(token, key, algorithm)
        except AuthenticationError:
            logger.debug("OIDC signature did not verify with key %s of %s", kid, source.origin)
            return None
