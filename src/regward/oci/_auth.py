"""Registry credentials, access scopes and the Docker token flow (distribution auth/token.md).

A registry that wants a token responds with 401 and
`WWW-Authenticate: Bearer realm="…",service="…",scope="…"`. The client then GETs the realm with
`service` and one `scope` parameter per scope, sending Basic credentials if it has any, and
retries with `Authorization: Bearer <token>`. Tokens are cached per scope until shortly before
`expires_in`, which the token spec defaults to 60 s.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from dataclasses import dataclass

import aiohttp
from yarl import URL

from regward.oci._http import read_at_most
from regward.oci._text import shown
from regward.oci.errors import AuthenticationError, RegistryError, RegistryUnavailableError

logger = logging.getLogger(__name__)

DEFAULT_TOKEN_LIFETIME = 60.0
"""Token lifetime in seconds when the token service sends no `expires_in`."""
TOKEN_EXPIRY_MARGIN = 10.0
"""Seconds before expiry at which a cached token is no longer used."""
MAX_TOKEN_RESPONSE_SIZE = 1024 * 1024
"""Maximum size in bytes of a token service response."""

# A path of the distribution API that names a repository, and the endpoint after it.
_REPOSITORY_PATH_RE = re.compile(
    r"/v2/(?P<name>.+)/(?:manifests/[^/]+|blobs/uploads/[^/]*|blobs/[^/]+|tags/list"
    r"|referrers/[^/]+)"
)
_READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Credentials:
    """A username and password (or access token) for a registry."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"

    __str__ = __repr__

    def basic_authorization(self) -> str:
        """Return the `Authorization` header value for HTTP Basic (RFC 7617)."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def pull_scope(repository: str) -> str:
    """Return the token scope that allows reading `repository`."""
    return f"repository:{repository}:pull"


def scope_for_request(method: str, path: str) -> str | None:
    """Return the token scope a distribution API request needs, or None for `/v2/` itself.

    Reads need `pull`, DELETE needs `delete` (as distribution 2.8 checks), and every other
    method needs `pull,push`. The catalog needs `registry:catalog:*`.
    """
    if path.startswith("/v2/_catalog"):
        return "registry:catalog:*"
    match = _REPOSITORY_PATH_RE.fullmatch(path)
    if match is None:
        return None
    name = match.group("name")
    method = method.upper()
    if method in _READ_METHODS:
        return f"repository:{name}:pull"
    if method == "DELETE":
        return f"repository:{name}:delete"
    return f"repository:{name}:pull,push"


class TokenCache:
    """Bearer tokens by scope, each valid until its expiry minus `TOKEN_EXPIRY_MARGIN`."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, float]] = {}

    def get(self, scope: str, now: float | None = None) -> str | None:
        """Return the cached token for `scope` if it has not expired."""
        entry = self._tokens.get(scope)
        if entry is None:
            return None
        token, valid_until = entry
        if (time.monotonic() if now is None else now) >= valid_until:
            del self._tokens[scope]
            return None
        return token

    def put(self, scope: str, token: str, lifetime: float, now: float | None = None) -> None:
        """Cache `token` for `scope`, issued now and valid for `lifetime` seconds."""
        start = time.monotonic() if now is None else now
        # Short-lived tokens keep at least half their lifetime instead of going negative.
        usable = max(lifetime - TOKEN_EXPIRY_MARGIN, lifetime / 2)
        self._tokens[scope] = (token, start + usable)

    def discard(self, scope: str, token: str) -> None:
        """Forget `token` for `scope`, unless another token replaced it meanwhile."""
        entry = self._tokens.get(scope)
        if entry is not None and entry[0] == token:
            del self._tokens[scope]


def check_realm(realm: str, *, plain_http_allowed: bool) -> URL:
    """Return the realm as a URL if credentials may be sent there.

    The realm must be an absolute https URL without user info. Plain http is allowed only when
    the registry itself is reached over plain http by policy (loopback or `insecure`).

    Raises:
        AuthenticationError: the realm is not acceptable.
    """
    try:
        url = URL(realm, encoded=True)
    except (ValueError, TypeError) as exc:
        raise AuthenticationError(f"invalid token realm {shown(realm)}: {exc}") from exc
    allowed = {"https", "http"} if plain_http_allowed else {"https"}
    if url.scheme not in allowed or not url.host:
        expected = "an http or https URL" if plain_http_allowed else "an https URL"
        raise AuthenticationError(
            f"invalid token realm {shown(realm)}: expected {expected}", url=realm
        )
    if url.user is not None or url.password is not None:
        raise AuthenticationError(
            f"invalid token realm {shown(realm)}: user info is not allowed", url=realm
        )
    return url


def _valid_token(value: object) -> str | None:
    # The token goes into an HTTP header, so only visible ASCII is accepted.
    if isinstance(value, str) and value and all(33 <= ord(char) <= 126 for char in value):
        return value
    return None


async def fetch_token(
    session: aiohttp.ClientSession,
    realm: URL,
    *,
    service: str | None,
    scopes: list[str],
    credentials: Credentials | None,
    headers: dict[str, str],
    timeout: aiohttp.ClientTimeout,
    ssl: bool = True,
) -> tuple[str, float]:
    """GET a bearer token from the token service at `realm`.

    Returns:
        The token and its lifetime in seconds.

    Raises:
        AuthenticationError: the service rejected the credentials or sent no usable token.
        RegistryUnavailableError: the service could not be reached or returned 5xx or 429.
    """
    query: list[tuple[str, str]] = []
    if service:
        query.append(("service", service))
    query.extend(("scope", scope) for scope in scopes)
    url = realm.extend_query(query)
    request_headers = dict(headers)
    if credentials is not None:
        request_headers["Authorization"] = credentials.basic_authorization()
    shown_realm = str(realm.with_query(None))

    try:
        async with session.get(
            url, headers=request_headers, timeout=timeout, allow_redirects=False, ssl=ssl
        ) as response:
            status = response.status
            body, too_large = await read_at_most(response, MAX_TOKEN_RESPONSE_SIZE)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise RegistryUnavailableError(
            f"could not get a token from {shown_realm}: {type(exc).__name__}: {exc}",
            url=shown_realm,
        ) from exc

    if status in (401, 403):
        raise AuthenticationError(
            f"token service {shown_realm} rejected the request for {' '.join(scopes) or 'access'}"
            f" (HTTP {status})",
            url=shown_realm,
            status_code=status,
        )
    if status == 429 or status >= 500:
        raise RegistryUnavailableError(
            f"could not get a token from {shown_realm}: HTTP {status}",
            url=shown_realm,
            status_code=status,
        )
    if status != 200:
        raise AuthenticationError(
            f"token service {shown_realm} returned HTTP {status}",
            url=shown_realm,
            status_code=status,
        )
    if too_large:
        raise AuthenticationError(
            f"token response from {shown_realm} is larger than {MAX_TOKEN_RESPONSE_SIZE} bytes",
            url=shown_realm,
        )

    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise AuthenticationError(
            f"token response from {shown_realm} is not valid JSON", url=shown_realm
        ) from exc
    if not isinstance(document, dict):
        raise AuthenticationError(
            f"token response from {shown_realm} is not a JSON object", url=shown_realm
        )
    token = _valid_token(document.get("token")) or _valid_token(document.get("access_token"))
    if token is None:
        raise AuthenticationError(
            f"token response from {shown_realm} has no usable token or access_token",
            url=shown_realm,
        )
    expires_in = document.get("expires_in")
    lifetime = DEFAULT_TOKEN_LIFETIME
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        lifetime = float(expires_in)
    logger.debug(
        "got a token from %s for %s, valid for %.0f s", shown_realm, " ".join(scopes), lifetime
    )
    return token, lifetime


def unusable_challenge_error(url: str, schemes: list[str], has_credentials: bool) -> RegistryError:
    """Build the error for a 401 whose challenges the client cannot meet."""
    if "basic" in schemes and not has_credentials:
        return AuthenticationError(
            f"registry at {url} requires credentials (Basic) and none are configured",
            url=url,
            status_code=401,
        )
    listed = ", ".join(schemes) if schemes else "none"
    return AuthenticationError(
        f"registry at {url} returned 401 with no supported challenge (schemes: {listed})",
        url=url,
        status_code=401,
    )
