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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from regward.oci._auth import Credentials, pull_scope, scope_for_request
from regward.oci._http import is_loopback_host, next_link
from regward.oci._text import shown
from regward.oci._transport import (
    DEFAULT_LIMITS,
    DEFAULT_USER_AGENT,
    ClientLimits,
    RegistryTransport,
    display_url,
)
from regward.oci.digest import Digest, parse_digest, referrers_tag, verify_digest
from regward.oci.errors import (
    DigestMismatchError,
    InvalidDigestError,
    ManifestError,
    NotFoundError,
    OCIError,
    RegistryError,
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

DOCKER_HUB_API_HOST = "registry-1.docker.io"
"""The host that serves the distribution API for `docker.io`."""

_CHILD_FETCH_CONCURRENCY = 4


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


class RegistryClient(RegistryTransport):
    """A client for one registry's distribution API.

    Use it as an async context manager, or call `close()`, so the session it opened is closed.
    It is safe to share between concurrent tasks of one event loop.
    """

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

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

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
                    f"{subject}: invalid Docker-Content-Digest header: {exc}", url=display_url(url)
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
                f"{subject}: HEAD response has no Docker-Content-Digest header",
                url=display_url(url),
            )
        if size is None:
            raise RegistryError(
                f"{subject}: HEAD response has no Content-Length header", url=display_url(url)
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
                raise RegistryError(
                    f"{subject}: pagination returned to {url}", url=display_url(url)
                )
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
                    f"{subject}: an empty page links to a next page", url=display_url(url)
                )
        return tags

    async def referrers(
        self, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Return the descriptors of the manifests that refer to `digest` (OCI 1.1 `subject`).

        Steps:

        1. Ask the referrers API, `GET /v2/<name>/referrers/<digest>`.
        2. If the registry lacks it (404, 400, 405, or a body that is not an image index),
           read the referrers tag schema index at tag `<alg>-<hex>`. A 404 there means no
           referrers.
        3. Some entries have no `artifactType`, as in indexes written by go-containerregistry
           before v0.22.1. For those, fetch the entry's manifest and take its `artifactType`,
           else its config media type.
        4. Filter by `artifact_type` here too, because registries may ignore the filter.

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
                raise RegistryError(
                    f"{subject}: pagination returned to {url}", url=display_url(url)
                )
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
                        "%s: referrers API returned %d, using the tag schema",
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
                    f"{subject}: a later page is not an image index", url=display_url(url)
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
            # The distribution spec: when the tag contains no valid image index, the client
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

    # Helpers.

    def _subject(self, kind: str, repository: str, reference: str) -> str:
        separator = "@" if ":" in reference else ":"
        return f"{kind} {self._name}/{repository}{separator}{reference}"

    @staticmethod
    def _manifest_reference(reference: str) -> Digest | None:
        if ":" in reference:
            return parse_digest(reference)
        validate_tag(reference)
        return None

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
                f"{subject}: the response is not valid JSON", url=display_url(url)
            ) from exc
        if not isinstance(document, dict):
            raise RegistryError(
                f"{subject}: the response is not a JSON object", url=display_url(url)
            )
        tags = document.get("tags")
        if tags is None:
            return []
        if not isinstance(tags, list):
            raise RegistryError(f"{subject}: 'tags' is not an array", url=display_url(url))
        page: list[str] = []
        for tag in tags:
            if not isinstance(tag, str):
                raise RegistryError(
                    f"{subject}: tag {shown(tag)} is not a string", url=display_url(url)
                )
            try:
                page.append(validate_tag(tag))
            except OCIError as exc:
                raise RegistryError(f"{subject}: {exc}", url=display_url(url)) from exc
        return page

    def _next_page(self, current: URL, links: list[str], subject: str) -> URL | None:
        target = next_link(links)
        if target is None:
            return None
        try:
            url = current.join(URL(target, encoded=True))
        except (ValueError, TypeError) as exc:
            raise RegistryError(
                f"{subject}: invalid Link target {shown(target)}", url=display_url(current)
            ) from exc
        if url.origin() != self._base or not url.raw_path.startswith("/v2/"):
            raise RegistryError(
                f"{subject}: Link header points to {shown(display_url(url))}, outside the "
                f"registry {self.base_url}/v2/",
                url=display_url(current),
            )
        return url
