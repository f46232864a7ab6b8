"""Async client for the OCI distribution API of one registry, on aiohttp.

What it reads for regward's own decisions (manifests, blobs read into memory, tag lists,
referrers) is size-capped and verified against its digest. `open_blob` and `request` return
the raw response for the gate to relay and do not hash, because hashing relayed blobs costs
more CPU than the relay itself and the pulling client verifies them anyway.

Every request is bounded by `ClientLimits`: connect and per-read timeouts always, and a total
timeout for everything read into memory. Authentication is anonymous, Basic, or the Docker
token flow, chosen by the registry's `WWW-Authenticate` challenge.

Example:
    async with RegistryClient.for_registry("127.0.0.1:5000") as client:
        fetched = await client.get_manifest("org/app", "v1")
        config = await client.get_blob("org/app", fetched.manifest.config.digest)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import TracebackType
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
    pull_scope,
    scope_for_request,
    unusable_challenge_error,
)
from regward.oci._challenge import parse_www_authenticate
from regward.oci._http import (
    distribution_error,
    is_internal_host,
    is_loopback_host,
    next_link,
    read_at_most,
)
from regward.oci._text import shown
from regward.oci.digest import Digest, parse_digest, referrers_tag, verify_digest
from regward.oci.errors import (
    AuthenticationError,
    DigestMismatchError,
    InvalidDigestError,
    ManifestError,
    NotFoundError,
    OCIError,
    RegistryError,
    RegistryUnavailableError,
    TooLargeError,
)
from regward.oci.manifest import Descriptor, Manifest, parse_manifest
from regward.oci.mediatypes import MANIFEST_ACCEPT, OCI_INDEX, check_manifest_media_type
from regward.oci.reference import (
    DOCKER_HUB,
    normalize_registry,
    split_registry,
    validate_repository,
    validate_tag,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_USER_AGENT",
    "DOCKER_HUB_API_HOST",
    "ClientLimits",
    "Credentials",
    "FetchedManifest",
    "RegistryClient",
]

logger = logging.getLogger(__name__)

DEFAULT_USER_AGENT = f"regward/{__version__}"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
"""The host that serves the distribution API for `docker.io`."""

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ERROR_BODY_LIMIT = 64 * 1024
_CHILD_FETCH_CONCURRENCY = 4
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


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest fetched from a registry and verified against its digest."""

    digest: Digest
    """The digest of `raw`; equal to the requested digest when fetched by digest."""
    media_type: str
    """The manifest media type, without parameters."""
    raw: bytes = field(repr=False)
    """The bytes exactly as served; serve these, never a re-encoding."""
    manifest: Manifest = field(repr=False)
    """The parsed manifest."""


def _display(url: URL) -> str:
    # Query strings can carry signatures (pre-signed blob URLs), so messages and logs omit them.
    return str(url.with_query(None).with_fragment(None))


def _unavailable_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


class RegistryClient:
    """A client for one registry's distribution API.

    Use it as an async context manager, or call `close()`, so the session it opened is closed.
    It is safe to share between concurrent tasks of one event loop.
    """

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
                f"refusing plain http to registry {base.raw_authority}: it is not a loopback "
                "address; use https or set insecure"
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
        self._tokens = TokenCache()
        self._token_locks: dict[str, asyncio.Lock] = {}
        if insecure and base.scheme == "https":
            logger.warning("TLS certificate verification is off for registry %s", self._name)

    @classmethod
    def for_registry(
        cls,
        host: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        limits: ClientLimits = DEFAULT_LIMITS,
        session: aiohttp.ClientSession | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> RegistryClient:
        """Create a client for a registry named as in image references, such as `ghcr.io`.

        Loopback hosts (`localhost`, 127.0.0.0/8, `[::1]`) and `insecure` registries use plain
        http; every other registry uses https with certificate verification. `docker.io` is
        served by `registry-1.docker.io`.

        Raises:
            InvalidReferenceError: `host` is not a valid `host[:port]`.
        """
        registry = normalize_registry(host)
        if registry == DOCKER_HUB:
            registry = DOCKER_HUB_API_HOST
        hostname, _ = split_registry(registry)
        scheme = "http" if insecure or is_loopback_host(hostname) else "https"
        return cls(
            f"{scheme}://{registry}",
            credentials=credentials,
            insecure=insecure,
            limits=limits,
            session=session,
            user_agent=user_agent,
        )

    @property
    def base_url(self) -> str:
        """The registry origin, such as `https://ghcr.io`."""
        return str(self._base)

    @property
    def limits(self) -> ClientLimits:
        """The limits this client applies."""
        return self._limits

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client opened it. Later calls raise OCIError."""
        self._closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # Public API.

    async def get_manifest(
        self, repository: str, reference: str, *, accept: str = MANIFEST_ACCEPT
    ) -> FetchedManifest:
        """Fetch, verify and parse a manifest by tag or digest.

        By digest, the bytes must hash to that digest. By tag, the computed digest is the
        result. In both cases a `Docker-Content-Digest` header that disagrees with the bytes
        is an error.

        Raises:
            InvalidReferenceError: `repository` or `reference` is malformed.
            NotFoundError: the registry has no such manifest.
            DigestMismatchError: the bytes do not match the requested digest or the header.
            TooLargeError: the manifest is larger than `limits.max_manifest_size`.
            ManifestError: the bytes are not a valid manifest of a supported type.
            AuthenticationError: the registry rejected the request.
            RegistryUnavailableError: the registry could not be reached or failed.
        """
        validate_repository(repository)
        requested = self._manifest_reference(reference)
        subject = self._subject("manifest", repository, reference)
        url = self._url(f"/v2/{repository}/manifests/{reference}")

        response = await self._send(
            "GET",
            url,
            scope=pull_scope(repository),
            headers={"Accept": accept},
            timeout=self._bounded_timeout(),
        )
        try:
            if response.status != 200:
                await self._raise_for_status(response, subject)
            raw = await self._read_body(response, self._limits.max_manifest_size, subject)
            content_type = response.headers.get("Content-Type")
            header_digest = response.headers.get("Docker-Content-Digest")
        finally:
            response.release()

        # (1): by digest, the bytes must hash to the digest that was asked for.
        algorithm = "sha256"
        if requested is not None:
            algorithm = requested.partition(":")[0]
            verify_digest(raw, requested, subject=subject)

        # (2): a Docker-Content-Digest header must agree with the bytes.
        if header_digest:
            try:
                announced = parse_digest(header_digest.strip())
            except InvalidDigestError as exc:
                raise DigestMismatchError(
                    f"{subject} came with an invalid Docker-Content-Digest header: {exc}",
                    actual=header_digest,
                ) from exc
            verify_digest(raw, announced, subject=f"{subject} (Docker-Content-Digest header)")

        # (3): parse; the digest of the result is the one computed from the bytes.
        manifest = parse_manifest(
            raw, content_type, max_size=self._limits.max_manifest_size, algorithm=algorithm
        )
        logger.debug("fetched %s: %s, %d bytes", subject, manifest.digest, len(raw))
        return FetchedManifest(manifest.digest, manifest.media_type, raw, manifest)

    async def head_manifest(self, repository: str, reference: str) -> Descriptor | None:
        """Return the descriptor a HEAD request reports for a manifest, or None on 404.

        Nothing is verified except that a digest reference matches the header: a HEAD has no
        body. Use `get_manifest` for anything a decision depends on.

        Raises:
            InvalidReferenceError: `repository` or `reference` is malformed.
            DigestMismatchError: by digest, the header names another digest.
            ManifestError: the Content-Type is not a supported manifest type.
            RegistryError: the response lacks the digest or size header, or another error.
        """
        validate_repository(repository)
        requested = self._manifest_reference(reference)
        subject = self._subject("manifest", repository, reference)
        url = self._url(f"/v2/{repository}/manifests/{reference}")

        response = await self._send(
            "HEAD",
            url,
            scope=pull_scope(repository),
            headers={"Accept": MANIFEST_ACCEPT},
            timeout=self._bounded_timeout(),
        )
        try:
            if response.status == 404:
                return None
            if response.status != 200:
                await self._raise_for_status(response, subject)
            content_type = response.headers.get("Content-Type", "")
            header_digest = response.headers.get("Docker-Content-Digest")
            size = response.content_length
        finally:
            response.release()

        media_type = check_manifest_media_type(content_type, subject=subject)
        if header_digest:
            try:
                digest = parse_digest(header_digest.strip())
            except InvalidDigestError as exc:
                raise RegistryError(
                    f"{subject}: invalid Docker-Content-Digest header: {exc}", url=_display(url)
                ) from exc
            if requested is not None and digest != requested:
                raise DigestMismatchError(
                    f"digest mismatch for {subject}: the registry reports {digest}",
                    expected=requested,
                    actual=digest,
                )
        elif requested is not None:
            digest = requested
        else:
            raise RegistryError(
                f"{subject}: HEAD response has no Docker-Content-Digest header", url=_display(url)
            )
        if size is None:
            raise RegistryError(
                f"{subject}: HEAD response has no Content-Length header", url=_display(url)
            )
        return Descriptor(media_type=media_type, digest=digest, size=size)

    async def get_blob(self, repository: str, digest: str, *, max_size: int | None = None) -> bytes:
        """Fetch a blob into memory and verify it against `digest`.

        Args:
            repository: the repository holding the blob.
            digest: the blob digest.
            max_size: the maximum size in bytes; `limits.max_blob_size` when None.

        Raises:
            InvalidReferenceError, InvalidDigestError: malformed arguments.
            NotFoundError: the registry has no such blob.
            TooLargeError: the blob is larger than the limit.
            DigestMismatchError: the bytes do not hash to `digest`.
            RegistryUnavailableError: the body ended early, timed out, or the registry failed.
        """
        validate_repository(repository)
        expected = parse_digest(digest)
        limit = self._limits.max_blob_size if max_size is None else max_size
        subject = self._subject("blob", repository, expected)
        url = self._url(f"/v2/{repository}/blobs/{expected}")

        response = await self._send(
            "GET", url, scope=pull_scope(repository), timeout=self._bounded_timeout()
        )
        try:
            if response.status != 200:
                await self._raise_for_status(response, subject)
            data = await self._read_body(response, limit, subject)
        finally:
            response.release()

        verify_digest(data, expected, subject=subject)
        return data

    async def open_blob(
        self, repository: str, digest: str, *, headers: Mapping[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        """Start a blob download and return the response for the caller to stream.

        Redirects are followed (without sending credentials to another origin). The body is
        not hashed and no total timeout applies, only the connect and per-read timeouts. The
        caller must release the response. A 2xx or 304 response is returned; other statuses
        raise.

        Args:
            repository: the repository holding the blob.
            digest: the blob digest.
            headers: extra request headers, such as `Range` or `If-None-Match`.

        Raises:
            InvalidReferenceError, InvalidDigestError: malformed arguments.
            NotFoundError: the registry has no such blob.
            AuthenticationError, RegistryUnavailableError, RegistryError: other failures.
        """
        validate_repository(repository)
        expected = parse_digest(digest)
        subject = self._subject("blob", repository, expected)
        url = self._url(f"/v2/{repository}/blobs/{expected}")
        response = await self._send(
            "GET",
            url,
            scope=pull_scope(repository),
            headers=self._forwardable(headers),
            timeout=self._stream_timeout(),
        )
        if response.status >= 300 and response.status != 304:
            await self._raise_for_status(response, subject)
        return response

    async def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Return every tag of `repository`, following `Link` pagination.

        Args:
            repository: the repository.
            page_size: the `n` parameter for each page; the registry's default when None.

        Raises:
            NotFoundError: the repository does not exist.
            TooLargeError: more than `limits.max_tags` tags, or a page larger than
                `limits.max_listing_size`.
            RegistryError: a malformed page, a `Link` to another origin, or another error.
        """
        validate_repository(repository)
        subject = f"tag list of {self._name}/{repository}"
        query = [("n", str(page_size))] if page_size is not None else None
        url: URL | None = self._url(f"/v2/{repository}/tags/list", query)
        tags: list[str] = []
        seen: set[str] = set()

        while url is not None:
            if str(url) in seen:
                raise RegistryError(f"{subject}: pagination returned to {url}", url=_display(url))
            seen.add(str(url))
            body, links = await self._get_listing(url, repository, subject)
            page = self._parse_tag_page(body, subject, url)
            tags.extend(page)
            if len(tags) > self._limits.max_tags:
                raise TooLargeError(
                    f"{subject} has more than {self._limits.max_tags} tags",
                    limit=self._limits.max_tags,
                    size=len(tags),
                )
            url = self._next_page(url, links, subject)
            if url is not None and not page:
                raise RegistryError(
                    f"{subject}: an empty page links to a next page", url=_display(url)
                )
        return tags

    async def referrers(
        self, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Return the descriptors of the manifests that refer to `digest` (OCI 1.1 `subject`).

        Steps: (1) ask the referrers API; (2) if the registry does not have it (404, 400, 405,
        or a body that is not an image index), read the referrers tag schema index at tag
        `<alg>-<hex>`, where a 404 means no referrers; (3) for entries without
        `artifactType`, as indexes written by older go-containerregistry versions have, fetch
        the entry's manifest and take its `artifactType`, else its config media type;
        (4) filter by `artifact_type` here too, since registries may ignore the filter.

        The list is what the registry reports. Callers must still fetch each referrer by
        digest and check its `subject` before trusting it.

        Raises:
            InvalidReferenceError, InvalidDigestError: malformed arguments.
            TooLargeError: more than `limits.max_referrers` referrers.
            RegistryError: the registry failed or sent malformed data.
        """
        validate_repository(repository)
        subject_digest = parse_digest(digest)

        # (1) and (2): the API, then the tag schema.
        listed = await self._referrers_api(repository, subject_digest, artifact_type)
        if listed is None:
            listed = await self._referrers_tag_index(repository, subject_digest)

        unique: dict[str, Descriptor] = {}
        for descriptor in listed:
            unique.setdefault(descriptor.digest, descriptor)
        if len(unique) > self._limits.max_referrers:
            raise TooLargeError(
                f"{self._subject('manifest', repository, subject_digest)} has more than "
                f"{self._limits.max_referrers} referrers",
                limit=self._limits.max_referrers,
                size=len(unique),
            )

        # (3): fill in missing artifact types.
        descriptors = await self._fill_artifact_types(repository, list(unique.values()))

        # (4): filter.
        if artifact_type is not None:
            descriptors = [d for d in descriptors if d.artifact_type == artifact_type]
        return descriptors

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        allow_redirects: bool = True,
    ) -> aiohttp.ClientResponse:
        """Send an authenticated request to a distribution API path and return the response.

        For the gate's pass-through. The response is returned whatever its status, except that
        a 401 after authenticating raises. The caller must release it. Redirects are followed
        for GET and HEAD only. No total timeout applies, only the connect and per-read ones.
        The caller's `Authorization`, `Host` and hop-by-hop headers are dropped.

        A body that cannot be sent twice (a stream) is not retried after a 401, so the client
        first learns the registry's challenge from `GET /v2/` and authenticates up front.

        Args:
            method: the HTTP method.
            path: a path starting with `/v2/`, optionally with a query string, percent-encoded.
            headers: request headers to forward.
            data: the request body (bytes, str, or anything aiohttp accepts as a body).
            params: query parameters added to those in `path`.
            allow_redirects: whether to follow redirects of GET and HEAD requests.

        Raises:
            OCIError: `path` is not a distribution API path.
            AuthenticationError: the registry rejected the credentials.
            RegistryUnavailableError: the registry could not be reached.
        """
        url = self._raw_url(path, params)
        scope = scope_for_request(method, url.raw_path)
        return await self._send(
            method.upper(),
            url,
            scope=scope,
            headers=self._forwardable(headers),
            data=data,
            timeout=self._stream_timeout(),
            follow_redirects=allow_redirects,
        )

    # Referrers.

    async def _referrers_api(
        self, repository: str, digest: Digest, artifact_type: str | None
    ) -> list[Descriptor] | None:
        """List referrers through the API, or return None if the registry lacks it."""
        subject = f"referrers of {self._name}/{repository}@{digest}"
        query = [("artifactType", artifact_type)] if artifact_type else None
        url: URL | None = self._url(f"/v2/{repository}/referrers/{digest}", query)
        descriptors: list[Descriptor] = []
        first = True
        seen: set[str] = set()

        while url is not None:
            if str(url) in seen:
                raise RegistryError(f"{subject}: pagination returned to {url}", url=_display(url))
            seen.add(str(url))
            response = await self._send(
                "GET",
                url,
                scope=pull_scope(repository),
                headers={"Accept": OCI_INDEX},
                timeout=self._bounded_timeout(),
            )
            try:
                if first and response.status in (400, 404, 405):
                    logger.debug(
                        "%s: referrers API answered %d, using the tag schema",
                        subject,
                        response.status,
                    )
                    return None
                if response.status != 200:
                    await self._raise_for_status(response, subject)
                raw = await self._read_body(response, self._limits.max_listing_size, subject)
                content_type = response.headers.get("Content-Type")
                links = response.headers.getall("Link", [])
            finally:
                response.release()

            try:
                index: Manifest | None = parse_manifest(
                    raw, content_type, max_size=self._limits.max_listing_size
                )
            except ManifestError:
                index = None
            if index is None or not index.is_index:
                if first:
                    logger.debug(
                        "%s: referrers API sent no image index, using the tag schema", subject
                    )
                    return None
                raise RegistryError(
                    f"{subject}: a later page is not an image index", url=_display(url)
                )

            descriptors.extend(index.manifests)
            if len(descriptors) > self._limits.max_referrers:
                raise TooLargeError(
                    f"{subject}: more than {self._limits.max_referrers} referrers",
                    limit=self._limits.max_referrers,
                    size=len(descriptors),
                )
            first = False
            url = self._next_page(url, links, subject)
        return descriptors

    async def _referrers_tag_index(self, repository: str, digest: Digest) -> list[Descriptor]:
        """List referrers from the referrers tag schema index."""
        tag = referrers_tag(digest)
        try:
            fetched = await self.get_manifest(repository, tag)
        except NotFoundError:
            return []
        except ManifestError as exc:
            # The distribution spec: when the tag holds no valid image index, the client
            # assumes there are no referrers.
            logger.debug(
                "%s/%s:%s is not a valid index, no referrers: %s", self._name, repository, tag, exc
            )
            return []
        if fetched.media_type != OCI_INDEX:
            logger.debug(
                "%s/%s:%s is %s, not an OCI image index: no referrers",
                self._name,
                repository,
                tag,
                fetched.media_type,
            )
            return []
        return list(fetched.manifest.manifests)

    async def _fill_artifact_types(
        self, repository: str, descriptors: list[Descriptor]
    ) -> list[Descriptor]:
        missing = [index for index, d in enumerate(descriptors) if not d.artifact_type]
        if not missing:
            return descriptors
        semaphore = asyncio.Semaphore(_CHILD_FETCH_CONCURRENCY)

        async def resolve(descriptor: Descriptor) -> Descriptor:
            async with semaphore:
                try:
                    fetched = await self.get_manifest(repository, descriptor.digest)
                except NotFoundError:
                    logger.debug(
                        "referrer %s of %s/%s is listed but missing",
                        descriptor.digest,
                        self._name,
                        repository,
                    )
                    return descriptor
            return replace(descriptor, artifact_type=fetched.manifest.effective_artifact_type)

        results = await asyncio.gather(
            *(resolve(descriptors[index]) for index in missing), return_exceptions=True
        )
        filled = list(descriptors)
        for index, result in zip(missing, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            filled[index] = result
        return filled

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

    def _subject(self, kind: str, repository: str, reference: str) -> str:
        separator = "@" if ":" in reference else ":"
        return f"{kind} {self._name}/{repository}{separator}{reference}"

    @staticmethod
    def _manifest_reference(reference: str) -> Digest | None:
        if ":" in reference:
            return parse_digest(reference)
        validate_tag(reference)
        return None

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
        """Send a request, answering one 401 challenge with credentials or a token."""
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
                f"registry {self._name} rejected {method} {_display(url)} with 401 and the "
                "streamed body cannot be sent again",
                url=_display(url),
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
            f"registry {self._name} rejected {what} for {method} {_display(url)} "
            "(HTTP 401 after authenticating)",
            url=_display(url),
            status_code=401,
        )

    async def _authorize_ahead(self, scope: str | None) -> str | None:
        """Learn the challenge from `GET /v2/` and return an Authorization value, if needed."""
        url = self._url("/v2/")
        response = await self._exchange(
            "GET", url, None, None, None, self._bounded_timeout(), False
        )
        status = response.status
        challenges = response.headers.getall("WWW-Authenticate", [])
        response.release()
        if status != 401:
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
        """Return an Authorization value that answers the challenges of a 401."""
        try:
            challenges = parse_www_authenticate(challenge_values)
        except AuthenticationError as exc:
            raise AuthenticationError(
                f"registry {self._name}: {exc}", url=_display(url), status_code=401
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
                url=_display(url),
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
                    f"could not reach registry {self._name} for {method} {_display(current)}: "
                    f"{_unavailable_reason(exc)}",
                    url=_display(current),
                ) from exc
            logger.debug("%s %s: %d", method, _display(current), response.status)

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
            f"{method} {_display(url)}",
            url=_display(url),
        )

    def _redirect_target(self, current: URL, location: str | None, status: int) -> URL:
        if not location:
            raise RegistryError(
                f"registry {self._name} answered {status} without a Location header",
                url=_display(current),
                status_code=status,
            )
        try:
            target = current.join(URL(location, encoded=True))
        except (ValueError, TypeError) as exc:
            raise RegistryError(
                f"registry {self._name} redirected to an invalid URL {shown(location)}",
                url=_display(current),
                status_code=status,
            ) from exc
        if target.scheme not in ("http", "https") or not target.host:
            raise RegistryError(
                f"registry {self._name} redirected to {shown(_display(target))}: expected an "
                "http(s) URL",
                url=_display(current),
                status_code=status,
            )
        if current.scheme == "https" and target.scheme == "http" and not self._plain_http:
            raise RegistryError(
                f"registry {self._name} redirected from https to plain http "
                f"({_display(target)}); refusing the downgrade",
                url=_display(current),
                status_code=status,
            )
        # NOTE: only IP literals and "localhost" are checked; a public name that resolves to
        # an internal address is not caught here.
        if is_internal_host(target.host) and not self._internal:
            raise RegistryError(
                f"registry {self._name} redirected to internal address {target.host}; refusing",
                url=_display(current),
                status_code=status,
            )
        return target

    # Responses.

    async def _raise_for_status(self, response: aiohttp.ClientResponse, subject: str) -> NoReturn:
        """Raise the error for a non-success response, reading at most 64 KiB of its body."""
        status = response.status
        url = _display(response.url)
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
                f"could not fetch {subject}: registry answered {detail}",
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
        url = _display(response.url)
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
                f"could not fetch {subject}: reading the body failed: {_unavailable_reason(exc)}",
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
        declared = response.content_length
        if declared is not None and len(data) != declared:
            raise RegistryUnavailableError(
                f"could not fetch {subject}: the body ended after {len(data)} of {declared} bytes",
                url=url,
            )
        return data

    # Listings.

    async def _get_listing(
        self, url: URL, repository: str, subject: str
    ) -> tuple[bytes, list[str]]:
        response = await self._send(
            "GET", url, scope=pull_scope(repository), timeout=self._bounded_timeout()
        )
        try:
            if response.status != 200:
                await self._raise_for_status(response, subject)
            body = await self._read_body(response, self._limits.max_listing_size, subject)
            links = response.headers.getall("Link", [])
        finally:
            response.release()
        return body, links

    @staticmethod
    def _parse_tag_page(body: bytes, subject: str, url: URL) -> list[str]:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise RegistryError(
                f"{subject}: the response is not valid JSON", url=_display(url)
            ) from exc
        if not isinstance(document, dict):
            raise RegistryError(f"{subject}: the response is not a JSON object", url=_display(url))
        tags = document.get("tags")
        if tags is None:
            return []
        if not isinstance(tags, list):
            raise RegistryError(f"{subject}: 'tags' is not an array", url=_display(url))
        page: list[str] = []
        for tag in tags:
            if not isinstance(tag, str):
                raise RegistryError(
                    f"{subject}: tag {shown(tag)} is not a string", url=_display(url)
                )
            try:
                page.append(validate_tag(tag))
            except OCIError as exc:
                raise RegistryError(f"{subject}: {exc}", url=_display(url)) from exc
        return page

    def _next_page(self, current: URL, links: list[str], subject: str) -> URL | None:
        target = next_link(links)
        if target is None:
            return None
        try:
            url = current.join(URL(target, encoded=True))
        except (ValueError, TypeError) as exc:
            raise RegistryError(
                f"{subject}: invalid Link target {shown(target)}", url=_display(current)
            ) from exc
        if url.origin() != self._base or not url.raw_path.startswith("/v2/"):
            raise RegistryError(
                f"{subject}: Link header points to {shown(_display(url))}, outside the "
                f"registry {self.base_url}/v2/",
                url=_display(current),
            )
        return url
