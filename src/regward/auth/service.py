"""The token service the gate calls: the Docker token endpoint, the JWKS, and per-request checks.

`AuthService.token_endpoint` serves `GET /token` (Basic credentials) and `POST /token` (OAuth2
`grant_type=password` or `refresh_token`). `AuthService.authorize` decides each `/v2/` request from
a Bearer token issued here, or from Basic credentials sent directly. Credentials are a CI OIDC ID
token with username `oidc`, or a static `rgw_…` token with any username. Failed logins are limited
per client address, and every issued token and every denial is written to the audit log under the
identity's name, never with the secret.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs

from regward.auth.config import MIN_TOKEN_LIFETIME, AuthSettings
from regward.auth.errors import (
    AuthenticationError,
    JwksFetchError,
    SigningKeyError,
    TokenStoreError,
)
from regward.auth.grants import Identity, IdentityKind, grant_scopes
from regward.auth.jose import audience_matches
from regward.auth.keys import SigningKeyRing, jwks_bytes
from regward.auth.oidc import OIDC_USERNAME, OidcVerifier, grants_for_claims
from regward.auth.ratelimit import LoginRateLimiter
from regward.auth.routes import AccessKind, RequiredAccess, required_access
from regward.auth.scope import CATALOG_ACTION, Action, ResourceScope, parse_scopes
from regward.auth.static import StaticTokenStore, is_static_token
from regward.auth.tokens import AccessToken, RefreshGrant, TokenIssuer
from regward.logs import request_id
from regward.store.db import AuditAction, AuditDecision, AuditRecord, Store
from regward.store.errors import StoreError

logger = logging.getLogger(__name__)

STATIC_RECHECK_INTERVAL = 5.0
"""Seconds a static token's status is cached while Bearer tokens issued from it are checked."""

_AUDIT_RULE_TOKEN = "auth.token"  # noqa: S105 - a rule name, not a secret
_AUDIT_RULE_LOGIN = "auth.login"
_AUDIT_RULE_ACCESS = "auth.access"
_CATALOG_REPOSITORY = "_catalog"
_JSON = ("Content-Type", "application/json")
_NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


@dataclass(frozen=True)
class HttpResponse:
    """A complete HTTP response for the gate to send."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class AuthorizationResult:
    """The decision on one `/v2/` request.

    When `allowed` is false, the gate sends `status`, `headers` and `body` as they are; `headers`
    contains `WWW-Authenticate` or `Retry-After` but no `Content-Type`, and the body is JSON.
    """

    allowed: bool
    identity: str | None
    """Identity name for logs and audit: `<policy>:<sub>` or `token:<id>`."""
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    repository: str | None
    """The repository the request touches; None for `/v2/` and `/v2/_catalog`."""
    action: str | None
    """`pull`, `push`, `delete`, `catalog` for `/v2/_catalog`, None for `/v2/`."""


@dataclass(frozen=True)
class _TokenRequest:
    oauth: bool
    """POST (OAuth2 form) rather than GET."""
    grant_type: str
    scopes: tuple[str, ...]
    service: str | None
    offline: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _Outcome:
    response: HttpResponse
    failed_login: bool = False


def _never_protected(repository: str) -> bool:
    return False


def _error_body(code: str, message: str, detail: object = None) -> bytes:
    entry: dict[str, object] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return json.dumps({"errors": [entry]}).encode()


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lower), None)


def parse_basic(authorization: str) -> tuple[str, str] | None:
    """Decode `Basic base64(user:password)`, or return None when it is not that form."""
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def _bearer(authorization: str) -> str | None:
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


class AuthService:
    """Registry token service, OIDC federation and static tokens, behind one API for the gate."""

    def __init__(
        self,
        settings: AuthSettings,
        store: Store,
        *,
        realm: str,
        protected: Callable[[str], bool] = _never_protected,
        clock: Callable[[], float] = time.time,
        audit: Callable[[AuditRecord], None] | None = None,
    ) -> None:
        """Build the service; signing keys are read or created on first use.

        Args:
            settings: the validated `auth` section.
            store: the migrated regward store; static tokens live in its database.
            realm: URL of the token endpoint as clients reach it, e.g. `https://gate/token`.
            protected: returns whether policy rules protect a repository; with
                `pushRequiresOidc`, static tokens get no push on those.
            clock: returns the current Unix time.
            audit: receives each audit record, e.g. a queue that writes in the background. By
                default records are written with `store.record`, in the calling thread.
        """
        self.settings = settings
        self.realm = realm
        self._store = store
        self._protected = protected
        self._clock = clock
        self._audit_sink = audit
        self._keys = SigningKeyRing(
            settings.key_directory,
            rotation=settings.key_rotation,
            overlap=settings.key_overlap(),
            clock=clock,
        )
        self._issuer = TokenIssuer(
            self._keys,
            issuer=settings.issuer,
            service=settings.service,
            skew=settings.clock_skew,
            clock=clock,
        )
        self._oidc = OidcVerifier(settings.oidc, skew=settings.clock_skew, clock=clock)
        self.static_tokens = StaticTokenStore(
            store.engine,
            max_lifetime=settings.max_token_lifetime,
            rotation_overlap=settings.rotation_overlap,
            clock=clock,
        )
        """The static token table, also used by `regward token`."""
        self._limiter = LoginRateLimiter(
            burst=settings.login_rate_limit.burst,
            per_minute=settings.login_rate_limit.per_minute,
            clock=clock,
        )
        self._static_status: dict[str, tuple[float, bool]] = {}

    # -- JWKS ---------------------------------------------------------------------------

    def jwks(self) -> bytes:
        """Return the JWKS document (JSON) of the keys that verify issued tokens."""
        return jwks_bytes(self._keys)

    def signing_key_id(self) -> str:
        """Return the id of the current signing key, creating the first key when needed."""
        return self._keys.signing_key().kid

    # -- token endpoint -----------------------------------------------------------------

    async def token_endpoint(
        self,
        method: str,
        query_string: bytes,
        headers: Mapping[str, str],
        body: bytes,
        client_address: str,
    ) -> HttpResponse:
        """Serve one request to the token endpoint.

        Args:
            method: `GET` (Docker token flow) or `POST` (OAuth2 form).
            query_string: raw query string of the request.
            headers: request headers; names are matched case-insensitively.
            body: request body, read for POST.
            client_address: the client's IP address, the key of the failed-login limit.

        Returns:
            200 with `token`, `access_token`, `expires_in`, `issued_at` (and `refresh_token`
            when offline access was requested), or an error response: 400 bad request,
            401 missing or invalid credentials, 405 other methods, 429 too many failed logins,
            503 issuer keys or database unavailable.
        """
        parsed = self._parse_token_request(method, query_string, headers, body)
        if isinstance(parsed, HttpResponse):
            return parsed
        request = parsed

        # NOTE: attempts that start before an earlier failure is recorded are all checked; the
        # worker thread pool of asyncio.to_thread bounds how many run at once.
        retry_after = self._limiter.retry_after(client_address)
        if retry_after > 0:
            # Each failure that led here was logged at INFO, so the repeats go to DEBUG.
            logger.debug("login from %s rejected: too many failed logins", client_address)
            return self._token_error(
                request,
                429,
                "TOOMANYREQUESTS",
                "invalid_request",
                f"too many failed logins from {client_address}; retry in {int(retry_after) + 1} s",
                extra_headers=(("Retry-After", str(int(retry_after) + 1)),),
            )

        outcome = await asyncio.to_thread(self._issue, request, client_address)
        if outcome.failed_login:
            self._limiter.record_failure(client_address)
        return outcome.response

    def _parse_token_request(
        self, method: str, query_string: bytes, headers: Mapping[str, str], body: bytes
    ) -> _TokenRequest | HttpResponse:
        method = method.upper()
        if method == "GET":
            params = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
            credentials = parse_basic(_header(headers, "Authorization") or "")
            request = _TokenRequest(
                oauth=False,
                grant_type="password",
                scopes=tuple(params.get("scope", [])),
                service=params.get("service", [None])[0],
                offline=params.get("offline_token", ["false"])[0].lower() == "true",
                username=None if credentials is None else credentials[0],
                password=None if credentials is None else credentials[1],
            )
        elif method == "POST":
            try:
                params = parse_qs(
                    body.decode("utf-8"), keep_blank_values=True, strict_parsing=False
                )
            except UnicodeDecodeError:
                params = {}
            grant_type = params.get("grant_type", [""])[0]
            request = _TokenRequest(
                oauth=True,
                grant_type=grant_type,
                scopes=tuple(params.get("scope", [])),
                service=params.get("service", [None])[0],
                offline=params.get("access_type", [""])[0] == "offline",
                username=params.get("username", [None])[0],
                password=params.get("password", [None])[0],
                refresh_token=params.get("refresh_token", [None])[0],
            )
            if grant_type not in ("password", "refresh_token"):
                return self._token_error(
                    request,
                    400,
                    "UNSUPPORTED",
                    "unsupported_grant_type",
                    f"unsupported grant_type {grant_type[:50]!r}: "
                    "expected password or refresh_token",
                )
        else:
            return HttpResponse(
                405,
                (_JSON, ("Allow", "GET, POST")),
                _error_body("UNSUPPORTED", f"method {method} is not allowed on the token endpoint"),
            )

        if request.service is not None and request.service != self.settings.service:
            return self._token_error(
                request,
                400,
                "DENIED",
                "invalid_request",
                f"unknown service {request.service[:100]!r}: expected {self.settings.service!r}",
            )
        missing = (
            request.refresh_token is None
            if request.grant_type == "refresh_token"
            else request.username is None or request.password is None
        )
        if missing:
            return self._token_error(
                request,
                401,
                "UNAUTHORIZED",
                "invalid_request",
                "authentication required: log in with username oidc and a CI OIDC token, or with "
                "a rgw_ static token as the password",
                extra_headers=(("WWW-Authenticate", f'Basic realm="{_quote(self.realm)}"'),),
            )
        return request

    def _token_error(
        self,
        request: _TokenRequest,
        status: int,
        code: str,
        oauth_error: str,
        message: str,
        *,
        extra_headers: tuple[tuple[str, str], ...] = (),
    ) -> HttpResponse:
        document: dict[str, object] = {"errors": [{"code": code, "message": message}]}
        if request.oauth:
            document["error"] = oauth_error
            document["error_description"] = message
        return HttpResponse(
            status, (_JSON, *_NO_STORE, *extra_headers), json.dumps(document).encode()
        )

    def _issue(self, request: _TokenRequest, client_address: str) -> _Outcome:
        """Authenticate a token request and sign the token; runs in a worker thread."""
        # (1): authenticate: refresh token, or username/password (OIDC or static token).
        # (2): intersect the requested scopes with the identity's grants (partial grant).
        # (3): take the configured lifetime, bounded by a static token's own expiry.
        # (4): sign, write the audit records, and return the response.
        requested = parse_scopes(request.scopes)
        try:
            if request.grant_type == "refresh_token":
                assert request.refresh_token is not None
                identity = self._identity_from_refresh(request.refresh_token)
            else:
                assert request.username is not None and request.password is not None
                identity = self.authenticate(request.username, request.password, client_address)
        except (JwksFetchError, TokenStoreError, StoreError) as exc:
            logger.warning("login from %s failed on a server-side error: %s", client_address, exc)
            self._audit_scopes(
                None, requested, "error", _AUDIT_RULE_LOGIN, [str(exc)], client_address
            )
            return _Outcome(
                self._token_error(
                    request,
                    503,
                    "UNAVAILABLE",
                    "temporarily_unavailable",
                    f"login unavailable: {exc}",
                )
            )
        except AuthenticationError as exc:
            logger.info("login from %s failed: %s", client_address, exc)
            self._audit_scopes(
                None, requested, "deny", _AUDIT_RULE_LOGIN, [str(exc)], client_address
            )
            oauth_error = "invalid_grant" if request.oauth else "invalid_request"
            return _Outcome(
                self._token_error(
                    request, 401, "UNAUTHORIZED", oauth_error, f"login failed: {exc}"
                ),
                failed_login=True,
            )

        granted, reduced = grant_scopes(
            identity,
            requested,
            protected=self._protected,
            push_requires_oidc=self.settings.push_requires_oidc,
        )
        # A static token's expiry bounds every token issued from it. A CI OIDC token only proves
        # the identity at login, and CI issuers make it short (GitHub: minutes), so the registry
        # token gets the configured lifetime and a long push does not fail halfway.
        remaining = int(identity.expires - self._clock())
        lifetime = self.settings.token_lifetime
        if identity.kind is IdentityKind.STATIC:
            lifetime = max(MIN_TOKEN_LIFETIME, min(lifetime, remaining))
        try:
            access = self._issuer.issue_access(identity, granted, lifetime)
            refresh = None
            refresh_lifetime = min(self.settings.refresh_token_lifetime, remaining)
            if (
                request.offline
                and request.grant_type == "password"
                and refresh_lifetime >= MIN_TOKEN_LIFETIME
            ):
                refresh = self._issuer.issue_refresh(identity, refresh_lifetime)
        except SigningKeyError as exc:
            logger.error("cannot sign a token for %s: %s", identity.name, exc)
            self._audit_scopes(
                identity.name, requested, "error", _AUDIT_RULE_TOKEN, [str(exc)], client_address
            )
            return _Outcome(
                self._token_error(
                    request, 503, "UNAVAILABLE", "temporarily_unavailable", f"cannot sign: {exc}"
                )
            )

        document: dict[str, object] = {
            "token": access.token,
            "access_token": access.token,
            "expires_in": access.expires_in,
            "issued_at": _iso(access.issued_at),
        }
        if request.oauth:
            document["token_type"] = "Bearer"  # noqa: S105 - OAuth2 token type
            document["scope"] = " ".join(scope.format() for scope in granted)
        if refresh is not None:
            document["refresh_token"] = refresh.token

        self._audit_issued(identity, requested, granted, reduced, lifetime, client_address)
        logger.info(
            "issued token to %s for %s from %s, valid %d s",
            identity.name,
            " ".join(scope.format() for scope in granted) or "no scopes",
            client_address,
            lifetime,
        )
        return _Outcome(HttpResponse(200, (_JSON, *_NO_STORE), json.dumps(document).encode()))

    # -- authentication -----------------------------------------------------------------

    def authenticate(self, username: str, password: str, client_address: str) -> Identity:
        """Verify a username and password and return the identity.

        Username `oidc` means the password is a CI OIDC ID token. A password starting with `rgw_`
        is a static token, whatever the username.

        Raises:
            AuthenticationError: the credentials are invalid; `JwksFetchError` when the issuer's
                keys are unavailable.
            TokenStoreError: the database failed.
        """
        if username == OIDC_USERNAME:
            return self._oidc.verify(password)
        if is_static_token(password):
            return self.static_tokens.verify(password, client_address).identity()
        raise AuthenticationError(
            "unknown credentials: use username oidc with a CI OIDC token, or a rgw_ static token "
            "as the password"
        )

    def _identity_from_refresh(self, token: str) -> Identity:
        grant = self._issuer.verify_refresh(token)
        return self._revalidate(grant)

    def _revalidate(self, grant: RefreshGrant) -> Identity:
        """Rebuild the identity of a refresh token from the current config and database."""
        if grant.kind is IdentityKind.STATIC:
            assert grant.token_id is not None
            token = self.static_tokens.get(grant.token_id)
            now = datetime.fromtimestamp(self._clock(), UTC)
            if token is None or token.status(now) != "active":
                status = "unknown" if token is None else token.status(now)
                raise AuthenticationError(f"static token {grant.token_id} is {status}")
            identity = token.identity()
            return Identity(
                name=identity.name,
                kind=identity.kind,
                grants=identity.grants,
                expires=min(identity.expires, grant.expires),
                token_id=identity.token_id,
            )

        missing = [name for name in grant.policies if not self._oidc.has_policy(name)]
        if missing:
            raise AuthenticationError(f"trust policy {', '.join(missing)} no longer exists")
        policies = [
            policy
            for policy in self._oidc.policies
            if policy.name in grant.policies
            and policy.issuer == grant.issuer
            and audience_matches(grant.claims, frozenset(policy.audience))
        ]
        names, grants = grants_for_claims(policies, grant.claims)
        if not grants:
            raise AuthenticationError("the OIDC identity matches no grant any more")
        return Identity(
            name=f"{names[0]}:{grant.claims.get('sub')}",
            kind=IdentityKind.OIDC,
            grants=grants,
            expires=grant.expires,
            policies=names,
            claims=grant.claims,
        )

    def _token_still_valid(self, token: AccessToken) -> str | None:
        """Return why an access token no longer counts, or None while its credential is valid."""
        if token.kind is IdentityKind.OIDC:
            missing = [name for name in token.policies if not self._oidc.has_policy(name)]
            if missing or not token.policies:
                return f"trust policy {', '.join(missing) or '(none)'} no longer exists"
            return None
        assert token.token_id is not None
        now = self._clock()
        cached = self._static_status.get(token.token_id)
        if cached is not None and 0 <= now - cached[0] < STATIC_RECHECK_INTERVAL:
            active = cached[1]
        else:
            active = self.static_tokens.is_active(token.token_id)
            self._static_status[token.token_id] = (now, active)
        return None if active else f"static token {token.token_id} is revoked or expired"

    # -- authorization of /v2/ requests -------------------------------------------------

    def authorize(
        self,
        method: str,
        path: str,
        authorization: str | None,
        client_address: str,
        *,
        query_string: bytes = b"",
    ) -> AuthorizationResult:
        """Decide whether a `/v2/` request may proceed.

        Args:
            method: the HTTP method.
            path: the request path; a `?query` suffix is read like `query_string`.
            authorization: the `Authorization` header, or None.
            client_address: the client's IP address.
            query_string: the raw query string, needed to check cross-repository mounts.

        Returns:
            Allowed (status 200), or 401 with a Bearer challenge, 403 `DENIED`, 404 for paths
            outside the distribution API, 429 after too many failed Basic logins, or 503 when
            credentials cannot be checked (database, signing keys or issuer keys unavailable).

        Basic credentials and the periodic revocation check of static tokens read the database,
        and a cold OIDC key cache fetches the issuer's JWKS, in the calling thread.
        """
        required = required_access(method, path, query_string)
        if not authorization:
            logger.debug("challenge for %s %s from %s", method, path, client_address)
            return self._challenge(required, "authentication required", error=None)

        bearer = _bearer(authorization)
        if bearer is not None:
            return self._authorize_bearer(bearer, required, client_address)
        basic = parse_basic(authorization)
        if basic is not None:
            return self._authorize_basic(basic, required, client_address)
        return self._challenge(
            required, "unsupported authorization scheme", error="invalid_request"
        )

    def _authorize_bearer(
        self, token_text: str, required: RequiredAccess, client_address: str
    ) -> AuthorizationResult:
        try:
            token = self._issuer.verify_access(token_text)
            problem = self._token_still_valid(token)
        except AuthenticationError as exc:
            return self._reject_credentials(required, f"invalid token: {exc}", client_address)
        except (TokenStoreError, StoreError, SigningKeyError) as exc:
            return self._unavailable(required, exc)
        if problem is not None:
            return self._reject_credentials(required, f"invalid token: {problem}", client_address)

        def allows(resource_type: str, name: str, action: str) -> bool:
            return token.allows(resource_type, name, action)

        return self._decide(token.subject, allows, required, client_address)

    def _authorize_basic(
        self, credentials: tuple[str, str], required: RequiredAccess, client_address: str
    ) -> AuthorizationResult:
        retry_after = self._limiter.retry_after(client_address)
        if retry_after > 0:
            seconds = str(int(retry_after) + 1)
            return AuthorizationResult(
                allowed=False,
                identity=None,
                status=429,
                headers=(("Retry-After", seconds),),
                body=_error_body(
                    "TOOMANYREQUESTS", f"too many failed logins; retry in {seconds} s"
                ),
                repository=required.repository,
                action=self._action_name(required),
            )
        try:
            identity = self.authenticate(credentials[0], credentials[1], client_address)
        except (JwksFetchError, TokenStoreError, StoreError) as exc:
            return self._unavailable(required, exc)
        except AuthenticationError as exc:
            self._limiter.record_failure(client_address)
            return self._reject_credentials(required, f"login failed: {exc}", client_address)

        protected = self._protected
        push_requires_oidc = self.settings.push_requires_oidc

        def allows(resource_type: str, name: str, action: str) -> bool:
            if resource_type == "registry":
                return identity.may_list_catalog()
            allowed = identity.allowed_actions(
                name, protected=protected, push_requires_oidc=push_requires_oidc
            )
            return action in allowed

        return self._decide(identity.name, allows, required, client_address)

    def _decide(
        self,
        identity: str,
        allows: Callable[[str, str, str], bool],
        required: RequiredAccess,
        client_address: str,
    ) -> AuthorizationResult:
        action_name = self._action_name(required)
        if required.kind is AccessKind.UNKNOWN:
            return AuthorizationResult(
                False,
                identity,
                404,
                (),
                _error_body("NAME_INVALID", "not a registry API path"),
                None,
                None,
            )
        missing: list[tuple[str, str]] = []
        if required.kind is AccessKind.CATALOG:
            if not allows("registry", "catalog", CATALOG_ACTION):
                missing.append((_CATALOG_REPOSITORY, "catalog"))
        elif required.kind is AccessKind.REPOSITORY:
            assert required.repository is not None and required.action is not None
            if not allows("repository", required.repository, str(required.action)):
                missing.append((required.repository, str(required.action)))
            if required.mount_from is not None and not allows(
                "repository", required.mount_from, str(Action.PULL)
            ):
                missing.append((required.mount_from or "(invalid name)", str(Action.PULL)))

        if not missing:
            logger.debug(
                "allowed %s on %s to %s", action_name, required.repository or "/v2/", identity
            )
            return AuthorizationResult(
                True, identity, 200, (), b"", required.repository, action_name
            )

        message = "; ".join(
            f"{identity} may not {action} {repository}" for repository, action in missing
        )
        logger.info("denied from %s: %s", client_address, message)
        for repository, action in missing:
            self._audit_one(
                identity,
                repository,
                Action.PULL if action == "catalog" else Action(action),
                "deny",
                _AUDIT_RULE_ACCESS,
                [f"{identity} has no {action} grant on {repository}"],
                client_address,
            )
        detail = [
            {"Type": "repository", "Name": repository, "Action": action}
            for repository, action in missing
        ]
        return AuthorizationResult(
            False,
            identity,
            403,
            (),
            _error_body("DENIED", f"requested access to the resource is denied: {message}", detail),
            required.repository,
            action_name,
        )

    @staticmethod
    def _action_name(required: RequiredAccess) -> str | None:
        if required.kind is AccessKind.CATALOG:
            return "catalog"
        return None if required.action is None else str(required.action)

    def _challenge_scope(self, required: RequiredAccess) -> str | None:
        if required.kind is AccessKind.CATALOG:
            return "registry:catalog:*"
        if required.kind is not AccessKind.REPOSITORY or required.repository is None:
            return None
        actions = {
            Action.PULL: "pull",
            Action.PUSH: "pull,push",
            Action.DELETE: "delete",
        }[required.action or Action.PULL]
        scope = f"repository:{required.repository}:{actions}"
        if required.mount_from:
            scope += f" repository:{required.mount_from}:pull"
        return scope

    def _challenge(
        self, required: RequiredAccess, message: str, *, error: str | None
    ) -> AuthorizationResult:
        parts = [f'realm="{_quote(self.realm)}"', f'service="{_quote(self.settings.service)}"']
        scope = self._challenge_scope(required)
        if scope is not None:
            parts.append(f'scope="{scope}"')
        if error is not None:
            parts.append(f'error="{error}"')
        detail = None
        if required.kind is AccessKind.REPOSITORY and required.action is not None:
            detail = [
                {"Type": "repository", "Name": required.repository, "Action": str(required.action)}
            ]
        return AuthorizationResult(
            allowed=False,
            identity=None,
            status=401,
            headers=(("WWW-Authenticate", "Bearer " + ",".join(parts)),),
            body=_error_body("UNAUTHORIZED", message, detail),
            repository=required.repository,
            action=self._action_name(required),
        )

    def _reject_credentials(
        self, required: RequiredAccess, message: str, client_address: str
    ) -> AuthorizationResult:
        logger.info("rejected credentials from %s: %s", client_address, message)
        action = Action.PULL if required.action is None else required.action
        repository = required.repository or (
            _CATALOG_REPOSITORY if required.kind is AccessKind.CATALOG else ""
        )
        self._audit_one(
            None, repository, action, "deny", _AUDIT_RULE_LOGIN, [message], client_address
        )
        return self._challenge(required, message, error="invalid_token")

    def _unavailable(self, required: RequiredAccess, exc: Exception) -> AuthorizationResult:
        logger.warning("cannot check credentials: %s", exc)
        return AuthorizationResult(
            allowed=False,
            identity=None,
            status=503,
            headers=(("Retry-After", "5"),),
            body=_error_body("UNAVAILABLE", f"credentials cannot be checked now: {exc}"),
            repository=required.repository,
            action=self._action_name(required),
        )

    # -- audit --------------------------------------------------------------------------

    def _audit_issued(
        self,
        identity: Identity,
        requested: Sequence[ResourceScope],
        granted: Sequence[ResourceScope],
        reduced: Sequence[ResourceScope],
        lifetime: int,
        client_address: str,
    ) -> None:
        granted_actions = {
            (scope.type, scope.name, action) for scope in granted for action in scope.actions
        }
        summary = f"token issued to {identity.name}, valid {lifetime} s"
        records = []
        for scope in requested:
            repository = _CATALOG_REPOSITORY if scope.type == "registry" else scope.name
            for action in scope.actions:
                audit_action = Action.PULL if action == CATALOG_ACTION else Action(action)
                if (scope.type, scope.name, action) in granted_actions:
                    records.append((repository, audit_action, "allow", [summary]))
                else:
                    reason = f"{identity.name} has no {action} grant on {repository}"
                    records.append((repository, audit_action, "deny", [summary, reason]))
        if not requested:
            records.append(("", Action.PULL, "allow", [summary + " without scopes (login check)"]))
        for repository, action, decision, reasons in records:
            self._audit_one(
                identity.name,
                repository,
                action,
                decision,
                _AUDIT_RULE_TOKEN,
                reasons,
                client_address,
            )
        if reduced:
            logger.info(
                "partial grant for %s: dropped %s",
                identity.name,
                " ".join(scope.format() for scope in reduced),
            )

    def _audit_scopes(
        self,
        identity: str | None,
        requested: Sequence[ResourceScope],
        decision: str,
        rule: str,
        reasons: list[str],
        client_address: str,
    ) -> None:
        targets = [
            (
                _CATALOG_REPOSITORY if scope.type == "registry" else scope.name,
                Action.PULL if scope.type == "registry" else Action(scope.actions[0]),
            )
            for scope in requested
        ] or [("", Action.PULL)]
        for repository, action in targets:
            self._audit_one(identity, repository, action, decision, rule, reasons, client_address)

    def _audit_one(
        self,
        identity: str | None,
        repository: str,
        action: Action,
        decision: str,
        rule: str,
        reasons: list[str],
        client_address: str,
    ) -> None:
        try:
            record = AuditRecord(
                time=datetime.fromtimestamp(self._clock(), UTC),
                request_id=request_id.get(),
                client_address=client_address or None,
                identity=identity,
                action=AuditAction(str(action)),
                repository=repository,
                decision=AuditDecision(decision),
                rule=rule,
                reasons=tuple(reasons),
            )
            if self._audit_sink is not None:
                self._audit_sink(record)
            else:
                self._store.record([record])
        except StoreError:
            # A lost audit record must not turn into a failed request; the error is logged.
            logger.exception("cannot write audit record for %s on %s", identity, repository)
