"""The authenticated, bounded HTTP exchange with one registry, under `RegistryClient`.

`RegistryTransport` owns the aiohttp session and the limits. It authenticates after a 401
challenge (Basic or the Docker token flow), follows redirects, maps HTTP statuses to
`RegistryError` subclasses and reads bodies up to a size cap. `RegistryClient` builds the
distribution API operations on it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, NoReturn
from urllib.parse import unquote

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from regward import __version__
from regward.oci._auth import (
    Credentials,
    TokenCache,
    check_realm,
    fetch_token,
    unusable_challenge_error,
)
from regward.oci._challenge import parse_www_authenticate
from regward.oci._http import distribution_error, is_internal_host, is_loopback_host, read_at_most
from regward.oci._text import shown
from regward.oci.errors import (
    AuthenticationError,
    NotFoundError,
    OCIError,
    RegistryError,
    RegistryUnavailableError,
    TooLargeError,
)

logger = logging.getLogger(__name__)

DEFAULT_USER_AGENT = f"regward/{__version__}"
"""The User-Agent header value: `regward/<version>`."""

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ERROR_BODY_LIMIT = 64 * 1024
# Headers a pass-through request must not forward: the client's own credentials and the
# hop-by-hop headers of RFC 9110, section 7.6.1.
_DROPPED_REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "host",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# RFC 3986 path characters plus "%" escapes, then an optional query.
_RAW_PATH_RE = re.compile(
    r"/v2/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*(?:\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?"
)


@dataclass(frozen=True)
class ClientLimits:
    """Bounds on every network call of a `RegistryClient`."""

    connect_timeout: float = 5.0
    """Seconds to get a connection, including the TCP and TLS handshakes."""
    read_timeout: float = 30.0
    """Seconds to wait for each read from the socket."""
    total_timeout: float = 60.0
    """Seconds for a whole request whose body is read into memory (not for `open_blob`)."""
    max_manifest_size: int = 4 * 1024 * 1024
    """Bytes; distribution 2.8 rejects manifest pushes larger than 4 MiB."""
    max_blob_size: int = 64 * 1024 * 1024
    """Bytes of a blob read into memory by `get_blob`."""
    max_tags: int = 100_000
    """Tags `list_tags` collects over all pages."""
    max_referrers: int = 10_000
    """Referrers `referrers` returns for one digest."""
    max_listing_size: int = 16 * 1024 * 1024
    """Bytes of one tag list page or referrers API response."""
    max_redirects: int = 5
    """Redirects followed for one request."""

    def __post_init__(self) -> None:
        values: dict[str, object] = {item.name: getattr(self, item.name) for item in fields(self)}
        for name, value in values.items():
            if name.endswith("_timeout"):
                if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                    raise OCIError(f"invalid client limit {name}={value!r}: must be positive")
            elif name == "max_redirects":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise OCIError(f"invalid client limit {name}={value!r}: must be 0 or more")
            elif not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise OCIError(f"invalid client limit {name}={value!r}: must be a positive integer")


DEFAULT_LIMITS = ClientLimits()
"""The default `ClientLimits`."""


def display_url(url: URL) -> str:
    """Return `url` without query and fragment, for messages and logs."""
    # Query strings can carry signatures (pre-signed blob URLs), so messages and logs omit them.
    return str(url.with_query(None).with_fragment(None))


def unavailable_reason(exc: BaseException) -> str:
    """Describe a transport failure for an error message."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


class RegistryTransport:
    """Authenticated, bounded requests to one registry; the base of `RegistryClient`."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        insecure: bool = False,
        limits: ClientLimits = DEFAULT_LIMITS,
        session: aiohttp.ClientSession | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        """Create a client for the registry at `base_url`, such as `https://ghcr.io`.

        Args:
            base_url: scheme and authority of the registry, with no path.
            credentials: username and password for Basic auth and for the token service.
            insecure: allow plain http to a host that is not loopback, and skip TLS
                certificate verification for https.
            limits: timeouts and size limits.
            session: an aiohttp session to use; the caller keeps ownership and closes it.
            user_agent: the User-Agent header value.

        Raises:
            OCIError: `base_url` is not an http(s) origin, or is plain http to a host that is
                not loopback while `insecure` is False.
        """
        try:
            base = URL(base_url)
        except (ValueError, TypeError) as exc:
            raise OCIError(f"invalid registry URL {shown(base_url)}: {exc}") from exc
        if base.scheme not in ("http", "https") or not base.host:
            raise OCIError(
                f"invalid registry URL {shown(base_url)}: expected http(s)://host[:port]"
            )
        if base.user or base.password or base.query_string or base.fragment:
            raise OCIError(
                f"invalid registry URL {shown(base_url)}: user info, query and fragment are not "
                "allowed"
            )
        if base.path not in ("", "/"):
            raise OCIError(
                f"invalid registry URL {shown(base_url)}: the distribution API is served at the "
                "root, so the URL must have no path"
            )
        loopback = is_loopback_host(base.host)
        if base.scheme == "http" and not (insecure or loopback):
            raise OCIError(
                f"plain http to registry {base.raw_authority} is not allowed because it is not "
                "a loopback address: use https, or set insecure"
            )

        self._base = base.origin()
        self._name = base.raw_authority
        self._credentials = credentials
        self._limits = limits
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._user_agent = user_agent
        # Credentials may go to a plain-http realm only if the registry itself is plain http.
        self._plain_http = base.scheme == "http"
        self._ssl = not (insecure and base.scheme == "https")
        self._internal = is_internal_host(base.host)
        self._basic = False
        self._open_ping = False
        self._tokens = TokenCache()
        self._token_locks: dict[str, asyncio.Lock] = {}
        if insecure and base.scheme == "https":
            logger.warning("TLS certificate verification is off for registry %s", self._name)

    @property
    def base_url(self) -> str:
        """The registry origin, such as `https://ghcr.io`."""
        return str(self._base)

    @property
    def limits(self) -> ClientLimits:
        """The limits this client applies."""
        return self._limits

    async def close(self) -> None:
        """Close the session if this client opened it. Later calls raise OCIError."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # Requests and authentication.

    def _url(self, path: str, query: Sequence[tuple[str, str]] | None = None) -> URL:
        # Callers pass validated repository names, tags and digests, which need no escaping.
        url = URL(f"{self._base}{path}", encoded=True)
        return url.extend_query(query) if query else url

    def _raw_url(
        self, path: str, params: Mapping[str, str] | Sequence[tuple[str, str]] | None
    ) -> URL:
        if not _RAW_PATH_RE.fullmatch(path):
            raise OCIError(f"invalid distribution API path {shown(path)}: expected /v2/...")
        segments = path.partition("?")[0].split("/")
        if any(unquote(segment) in (".", "..") for segment in segments):
            raise OCIError(f"invalid distribution API path {shown(path)}: dot segments")
        url = URL(f"{self._base}{path}", encoded=True)
        if url.origin() != self._base:
            raise OCIError(f"invalid distribution API path {shown(path)}: changes the origin")
        if params:
            url = url.extend_query(params)
        return url

    @staticmethod
    def _forwardable(headers: Mapping[str, str] | None) -> dict[str, str] | None:
        if headers is None:
            return None
        return {
            name: value
            for name, value in headers.items()
            if name.lower() not in _DROPPED_REQUEST_HEADERS
        }

    def _bounded_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self._limits.total_timeout,
            connect=self._limits.connect_timeout,
            sock_read=self._limits.read_timeout,
        )

    def _stream_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=None, connect=self._limits.connect_timeout, sock_read=self._limits.read_timeout
        )

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise OCIError(f"the client for registry {self._name} is closed")
        if self._session is None:
            # Bodies are read as sent: a relayed blob must keep its bytes, and a manifest is
            # hashed as served. Requests ask for identity encoding.
            self._session = aiohttp.ClientSession(
                auto_decompress=False, timeout=self._bounded_timeout()
            )
        return self._session

    def _cached_authorization(self, scope: str | None) -> str | None:
        if scope is not None:
            token = self._tokens.get(scope)
            if token is not None:
                return f"Bearer {token}"
        if self._basic and self._credentials is not None:
            return self._credentials.basic_authorization()
        return None

    async def _send(
        self,
        method: str,
        url: URL,
        *,
        scope: str | None,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        timeout: aiohttp.ClientTimeout,
        follow_redirects: bool = True,
    ) -> aiohttp.ClientResponse:
        """Send a request, and after a 401 send it once more with credentials or a token."""
        replayable = data is None or isinstance(data, bytes | bytearray | str)
        authorization = self._cached_authorization(scope)
        if authorization is None and not replayable:
            authorization = await self._authorize_ahead(scope)

        response = await self._exchange(
            method, url, headers, data, authorization, timeout, follow_redirects
        )
        if response.status != 401:
            return response
        challenges = response.headers.getall("WWW-Authenticate", [])
        response.release()
        if not replayable:
            raise AuthenticationError(
                f"registry {self._name} rejected {method} {display_url(url)} with 401 and the "
                "streamed body cannot be sent again",
                url=display_url(url),
                status_code=401,
            )

        authorization = await self._authorize(challenges, scope, authorization, method, url)
        response = await self._exchange(
            method, url, headers, data, authorization, timeout, follow_redirects
        )
        if response.status == 401:
            response.release()
            raise self._rejected(authorization, method, url)
        return response

    def _rejected(self, authorization: str, method: str, url: URL) -> AuthenticationError:
        if authorization.startswith("Basic ") and self._credentials is not None:
            what = f"the Basic credentials of user {shown(self._credentials.username)}"
        else:
            what = "the token from its token service"
        return AuthenticationError(
            f"registry {self._name} rejected {what} for {method} {display_url(url)} "
            "(HTTP 401 after authenticating)",
            url=display_url(url),
            status_code=401,
        )

    async def _authorize_ahead(self, scope: str | None) -> str | None:
        """Learn the challenge from `GET /v2/` and return an Authorization value, if needed."""
        if self._open_ping:
            return None
        url = self._url("/v2/")
        response = await self._exchange(
            "GET", url, None, None, None, self._bounded_timeout(), False
        )
        status = response.status
        challenges = response.headers.getall("WWW-Authenticate", [])
        response.release()
        if status != 401:
            # distribution challenges `/v2/` whenever auth is configured, so an open `/v2/`
            # means anonymous access and later streamed requests skip this check.
            self._open_ping = True
            return None
        return await self._authorize(challenges, scope, None, "GET", url)

    async def _authorize(
        self,
        challenge_values: list[str],
        scope: str | None,
        rejected: str | None,
        method: str,
        url: URL,
    ) -> str:
        """Return the Authorization value that meets the challenges of a 401."""
        try:
            challenges = parse_www_authenticate(challenge_values)
        except AuthenticationError as exc:
            raise AuthenticationError(
                f"registry {self._name}: {exc}", url=display_url(url), status_code=401
            ) from exc

        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is not None:
            token = await self._bearer_token(bearer.params, scope, rejected, url)
            return f"Bearer {token}"

        if any(c.scheme == "basic" for c in challenges) and self._credentials is not None:
            basic = self._credentials.basic_authorization()
            if rejected == basic:
                raise self._rejected(basic, method, url)
            self._basic = True
            return basic

        raise unusable_challenge_error(
            self._name, [c.scheme for c in challenges], self._credentials is not None
        )

    async def _bearer_token(
        self, params: Mapping[str, str], scope: str | None, rejected: str | None, url: URL
    ) -> str:
        realm_text = params.get("realm")
        if not realm_text:
            raise AuthenticationError(
                f"registry {self._name} sent a Bearer challenge without a realm",
                url=display_url(url),
                status_code=401,
            )
        realm = check_realm(realm_text, plain_http_allowed=self._plain_http)
        scopes = params.get("scope", "").split() or ([scope] if scope else [])
        key = scope or " ".join(scopes)
        rejected_token = rejected.removeprefix("Bearer ") if rejected else None

        # One fetch per scope at a time; tasks that waited reuse the token just fetched.
        lock = self._token_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached != rejected_token:
                return cached
            if rejected_token is not None:
                self._tokens.discard(key, rejected_token)
            session = await self._get_session()
            token, lifetime = await fetch_token(
                session,
                realm,
                service=params.get("service"),
                scopes=scopes,
                credentials=self._credentials,
                headers={"User-Agent": self._user_agent, "Accept-Encoding": "identity"},
                timeout=self._bounded_timeout(),
                ssl=self._ssl,
            )
            self._tokens.put(key, token, lifetime)
            return token

    async def _exchange(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str] | None,
        data: Any,
        authorization: str | None,
        timeout: aiohttp.ClientTimeout,
        follow_redirects: bool,
    ) -> aiohttp.ClientResponse:
        """Send one request, following redirects for GET and HEAD by hand.

        Redirects are followed here instead of by aiohttp so that credentials never go to
        another origin and a redirect cannot downgrade https to http or reach an internal
        address from a public registry.
        """
        session = await self._get_session()
        request_headers: CIMultiDict[str] = CIMultiDict(
            {"User-Agent": self._user_agent, "Accept-Encoding": "identity"}
        )
        if headers:
            request_headers.update(headers)
        if authorization is not None:
            request_headers["Authorization"] = authorization

        current = url
        for _ in range(self._limits.max_redirects + 1):
            try:
                response = await session.request(
                    method,
                    current,
                    headers=request_headers,
                    data=data,
                    allow_redirects=False,
                    timeout=timeout,
                    ssl=self._ssl,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise RegistryUnavailableError(
                    f"could not reach registry {self._name} for {method} {display_url(current)}: "
                    f"{unavailable_reason(exc)}",
                    url=display_url(current),
                ) from exc
            logger.debug("%s %s: %d", method, display_url(current), response.status)

            redirected = response.status in _REDIRECT_STATUSES and method in ("GET", "HEAD")
            if not follow_redirects or not redirected:
                return response
            location = response.headers.get("Location")
            response.release()
            target = self._redirect_target(current, location, response.status)
            if target.origin() != self._base:
                request_headers.pop("Authorization", None)
            current = target

        raise RegistryError(
            f"registry {self._name}: more than {self._limits.max_redirects} redirects for "
            f"{method} {display_url(url)}",
            url=display_url(url),
        )

    def _redirect_target(self, current: URL, location: str | None, status: int) -> URL:
        if not location:
            raise RegistryError(
                f"registry {self._name} returned {status} without a Location header",
                url=display_url(current),
                status_code=status,
            )
        try:
            target = current.join(URL(location, encoded=True))
        except (ValueError, TypeError) as exc:
            raise RegistryError(
                f"registry {self._name} redirected to an invalid URL {shown(location)}",
                url=display_url(current),
                status_code=status,
            ) from exc
        if target.scheme not in ("http", "https") or not target.host:
            raise RegistryError(
                f"registry {self._name} redirected to {shown(display_url(target))}: expected an "
                "http(s) URL",
                url=display_url(current),
                status_code=status,
            )
        if current.scheme == "https" and target.scheme == "http" and not self._plain_http:
            raise RegistryError(
                f"registry {self._name} redirected from https to plain http "
                f"({display_url(target)}), and a redirect must not downgrade to http",
                url=display_url(current),
                status_code=status,
            )
        # NOTE: only IP literals and "localhost" are checked; a public name that resolves to
        # an internal address is not caught here.
        if is_internal_host(target.host) and not self._internal:
            raise RegistryError(
                f"registry {self._name} redirected to internal address {target.host}, which "
                "is rejected because the registry itself is not internal",
                url=display_url(current),
                status_code=status,
            )
        return target

    # Responses.

    async def _raise_for_status(self, response: aiohttp.ClientResponse, subject: str) -> NoReturn:
        """Raise the error for a non-success response, reading at most 64 KiB of its body."""
        status = response.status
        url = display_url(response.url)
        try:
            body, _ = await read_at_most(response, _ERROR_BODY_LIMIT)
        except (aiohttp.ClientError, TimeoutError):
            body = b""
        finally:
            response.release()
        code, message = distribution_error(body)
        detail = f"HTTP {status}"
        if code:
            detail += f" {code}"
        if message:
            detail += f": {message}"

        if status == 404:
            raise NotFoundError(
                f"{subject} not found ({detail})", url=url, status_code=status, code=code
            )
        if status in (401, 403):
            raise AuthenticationError(
                f"access to {subject} denied ({detail})", url=url, status_code=status, code=code
            )
        if status == 429 or status >= 500:
            raise RegistryUnavailableError(
                f"could not fetch {subject}: registry returned {detail}",
                url=url,
                status_code=status,
                code=code,
            )
        raise RegistryError(
            f"registry rejected the request for {subject} ({detail})",
            url=url,
            status_code=status,
            code=code,
        )

    async def _read_body(self, response: aiohttp.ClientResponse, limit: int, subject: str) -> bytes:
        """Read a body into memory, enforcing `limit` and the declared Content-Length."""
        url = display_url(response.url)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        session = await self._get_session()
        if encoding not in ("", "identity") and not session.auto_decompress:
            raise RegistryError(
                f"{subject}: unexpected Content-Encoding {shown(encoding)} after requesting "
                "identity",
                url=url,
            )
        try:
            data, too_large = await read_at_most(response, limit)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RegistryUnavailableError(
                f"could not fetch {subject}: reading the body failed: {unavailable_reason(exc)}",
                url=url,
            ) from exc
        if too_large:
            declared = response.content_length
            size = declared if declared is not None and declared > limit else None
            shown_size = f"{size} bytes" if size is not None else "more bytes"
            raise TooLargeError(
                f"{subject} is larger than the limit: {shown_size}, the maximum is {limit}",
                limit=limit,
                size=size,
            )
        # A session that decompresses yields more bytes than the encoded Content-Length.
        declared = response.content_length
        if encoding in ("", "identity") and declared is not None and len(data) != declared:
            raise RegistryUnavailableError(
                f"could not fetch {subject}: the body ended after {len(data)} of {declared} bytes",
                url=url,
            )
        return data
