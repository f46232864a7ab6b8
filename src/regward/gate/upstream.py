"""A lean manifest fetcher for the gate's hot path: pooled keep-alive HTTP/1.1 to a plain-HTTP upstream.

A pull by tag must ask the upstream every time, and on a small machine the gate's CPU per request
comes straight off the registry's throughput. This fetcher sends one pre-built GET per manifest
over a pooled connection and parses the response with httptools, which costs less than a general
HTTP client. It serves only the common case: plain HTTP, no credentials, a 200 answer whose bytes
match their digest. Anything else returns None, and the caller asks `RegistryClient`, which handles
authentication, TLS, redirects and reports errors precisely. A 401 switches this fetcher off for
the life of the process, because the upstream then needs credentials.

The bytes returned are verified exactly as `RegistryClient.get_manifest` verifies them: the SHA-256
of the body must equal a requested digest and the registry's `Docker-Content-Digest`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import cast
from urllib.parse import urlsplit

import httptools

from regward import __version__
from regward.oci.client import FetchedManifest
from regward.oci.digest import Digest, is_digest
from regward.oci.errors import OCIError
from regward.oci.manifest import parse_manifest
from regward.oci.mediatypes import MANIFEST_ACCEPT

logger = logging.getLogger(__name__)

MAX_IDLE_CONNECTIONS = 64
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""The same cap as the registry client's default for manifests."""


class _ResponseError(Exception):
    """The response could not be read; the caller falls back to the registry client."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection that reads one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._future: asyncio.Future[tuple[int, dict[bytes, bytes], bytes]] | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._status = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            self._fail(_ResponseError("data received with no request outstanding"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(_ResponseError(f"invalid response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(_ResponseError(f"connection closed: {exc}"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_MANIFEST_BYTES:
            self._fail(_ResponseError(f"manifest larger than {MAX_MANIFEST_BYTES} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        assert self._parser is not None
        if not self._parser.should_keep_alive():
            self.close()
        if self._future is not None and not self._future.done():
            self._future.set_result((self._status, self._headers, b"".join(self._body)))
        self._parser = None

    # use

    def _fail(self, exc: Exception) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def request(self, raw: bytes, timeout: float) -> tuple[int, dict[bytes, bytes], bytes]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._future = loop.create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._headers = {}
        self._body = []
        self._size = 0
        self.transport.write(raw)
        try:
            return await asyncio.wait_for(self._future, timeout)
        except TimeoutError:
            self.close()
            raise _ResponseError(f"no response within {timeout} s") from None


class DirectManifestFetcher:
    """Fetch manifests over pooled connections; see the module docstring for when it applies."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        self.enabled = parts.scheme == "http" and parts.hostname is not None
        self._host = parts.hostname or ""
        self._port = parts.port or 80
        self._host_header = parts.netloc.encode("ascii")
        self._timeout = timeout
        self._idle: list[_Connection] = []
        self.fallbacks = 0
        """Requests handed to the registry client because this fetcher could not serve them."""

    async def get_manifest(self, repository: str, reference: str) -> FetchedManifest | None:
        """Return the verified manifest, or None when the registry client should fetch it."""
        if not self.enabled:
            return None
        raw_request = (
            f"GET /v2/{repository}/manifests/{reference} HTTP/1.1\r\n".encode("ascii")
            + b"Host: "
            + self._host_header
            + b"\r\nAccept: "
            + MANIFEST_ACCEPT.encode("ascii")
            + b"\r\nAccept-Encoding: identity\r\nUser-Agent: regward/"
            + __version__.encode("ascii")
            + b"\r\n\r\n"
        )
        try:
            connection = await self._connection()
            status, headers, body = await connection.request(raw_request, self._timeout)
        except (OSError, _ResponseError) as exc:
            logger.debug("direct manifest fetch of %s:%s failed: %s", repository, reference, exc)
            self.fallbacks += 1
            return None
        if not connection.closed and len(self._idle) < MAX_IDLE_CONNECTIONS:
            self._idle.append(connection)
        elif not connection.closed:
            connection.close()
        if status == 401:
            logger.info(
                "upstream asks for credentials: manifests are fetched with the registry client"
            )
            self.enabled = False
            self.close()
            return None
        if status != 200:
            self.fallbacks += 1
            return None
        return self._verified(repository, reference, headers, body)

    def _verified(
        self, repository: str, reference: str, headers: dict[bytes, bytes], body: bytes
    ) -> FetchedManifest | None:
        digest = Digest("sha256:" + hashlib.sha256(body).hexdigest())
        advertised = headers.get(b"docker-content-digest")
        if (is_digest(reference) and reference != digest) or (
            advertised is not None and advertised.decode("latin-1") != digest
        ):
            # The registry client fetches again and raises the precise mismatch error.
            self.fallbacks += 1
            return None
        content_type = headers.get(b"content-type", b"").decode("latin-1") or None
        try:
            manifest = parse_manifest(body, content_type)
        except OCIError:
            self.fallbacks += 1
            return None
        return FetchedManifest(digest, manifest.media_type, body, manifest)

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        loop = asyncio.get_running_loop()
        _, protocol = await asyncio.wait_for(
            loop.create_connection(_Connection, self._host, self._port), self._timeout
        )
        return protocol

    def close(self) -> None:
        """Close every idle connection."""
        for connection in self._idle:
            connection.close()
        self._idle.clear()
