"""The gate's ASGI application: the OCI distribution API in front of one upstream registry.

Manifest GET/HEAD requests are decided before any byte reaches the client, and the bytes served are
the ones whose digest was verified. Blob GETs are served only for blobs of manifests allowed in the
same repository (unless the policy sets `blobs: open`) and are relayed without hashing, because the
client verifies them. Pushes pass through after the tag immutability check.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from regward.errors import RegwardError
from regward.gate.audit import AuditWriter
from regward.gate.decider import Decider, RequestContext, redact_upstream
from regward.gate.http import (
    API_HEADER,
    BodyTooLargeError,
    Message,
    Receive,
    Route,
    Scope,
    Send,
    header,
    match_route,
    read_body,
    send_error,
    send_response,
)
from regward.gate.metrics import GateMetrics
from regward.gate.push import PushController
from regward.gate.reload import PolicyWatcher
from regward.gate.settings import GateSettings, SettingsError
from regward.gate.splice import SPLICE_EXTENSION, Splice
from regward.gate.upstream import DirectManifestFetcher
from regward.logs import request_id
from regward.oci.client import Credentials, RegistryClient
from regward.oci.digest import is_digest
from regward.oci.errors import NotFoundError, OCIError
from regward.policy.load import load_policy
from regward.policy.model import BlobAccess, Policy
from regward.store.db import Store

if TYPE_CHECKING:
    from regward.reeval.gate import GateReevaluation
    from regward.scanning.scanner import ImageScanner

logger = logging.getLogger(__name__)

RELAY_CHUNK = 1024 * 1024
"""Bytes per read when relaying bodies; large reads keep the per-chunk overhead low."""

# Headers that describe one hop and must not be relayed (RFC 9110 §7.6.1), plus the client's
# credentials, which are never forwarded upstream.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"authorization",
        b"cookie",
    }
)
_RESPONSE_SKIP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "www-authenticate",
        "set-cookie",
        "server",
        "date",
    }
)


class Gate:
    """ASGI application object; see the module docstring."""

    def __init__(self, settings: GateSettings, *, policy: Policy | None = None) -> None:
        self.settings = settings
        self.policy = policy if policy is not None else load_policy(settings.policy_path)
        self.store = Store(settings.database)
        self.audit = AuditWriter(self.store)
        self.metrics = GateMetrics()
        self.client: RegistryClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._watcher: PolicyWatcher | None = None
        self._fetcher: DirectManifestFetcher | None = None
        self.decider: Decider | None = None
        self.scanner: ImageScanner | None = None
        self.reevaluation: GateReevaluation | None = None
        self.push: PushController | None = None
        self.auth: Any = None
        self.admission: Any = None
        self._started = False
        # Request ids are a per-process random prefix and a counter: unique enough to correlate
        # log lines and audit records, and cheaper than a UUID per request.
        self._id_prefix = os.urandom(4).hex()
        self._id_counter = itertools.count(1)

    # -- lifecycle ------------------------------------------------------------------------

    async def startup(self) -> None:
        """Migrate the database, open the upstream client and start the audit writer."""
        if self._started:
            return
        await asyncio.to_thread(self.store.migrate)
        credentials = None
        if self.settings.upstream_username is not None:
            credentials = Credentials(
                self.settings.upstream_username, self.settings.upstream_password or ""
            )
        # The gate's own session: large socket reads make relayed blobs cost fewer event-loop
        # turns, and bodies are relayed exactly as the upstream sent them.
        self._session = aiohttp.ClientSession(
            auto_decompress=False,
            read_bufsize=RELAY_CHUNK,
            connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=300),
        )
        self.client = RegistryClient(
            self.settings.upstream,
            credentials=credentials,
            insecure=self.settings.upstream_insecure,
            session=self._session,
        )
        from regward.reeval.gate import GateReevaluation

        self.reevaluation = GateReevaluation(self.settings, self.store, lambda: self.policy)
        self.scanner = self._create_scanner(self.client)
        self._fetcher = (
            DirectManifestFetcher(self.settings.upstream)
            if self.settings.upstream_username is None
            else None
        )
        self.decider = Decider(
            self.policy,
            self.client,
            self.audit,
            fetcher=self._fetcher,
            decision_ttl=self.settings.decision_cache_seconds,
            manifest_cache_bytes=self.settings.manifest_cache_bytes,
            scanner=self.scanner,
            rescan_budget=self.settings.rescan_budget,
        )
        self.push = PushController(self.decider, self.client, self.store, self.audit)
        await self.reevaluation.start(self.decider)
        self.audit.start()
        self._watcher = PolicyWatcher(
            self.settings.policy_path,
            self.policy,
            self._apply_policy,
            interval=self.settings.policy_reload_seconds,
        )
        if self.settings.policy_reload_seconds > 0:
            self._watcher.start()
        if self.settings.auth and self.settings.auth.get("enabled"):
            from regward.gate.wiring import build_auth

            self.auth = build_auth(self)
        from regward.gate.wiring import build_admission

        self.admission = build_admission(self)
        self._started = True
        logger.info(
            "gate started: upstream %s, policy %s (revision %s), database %s",
            self.settings.upstream,
            self.settings.policy_path,
            self.policy.revision[:12],
            _redact_url(self.settings.database),
        )

    def _create_scanner(self, client: RegistryClient) -> ImageScanner:
        """Build the image scanner, and start loading the feed so the first pull need not wait.

        Raises:
            SettingsError: `feed` names a local path that does not exist.
        """
        from regward.scanning.feeds import FeedProvider, is_url
        from regward.scanning.scanner import ImageScanner
        from regward.store.scans import ScanStore

        source = self.settings.feed
        feeds: FeedProvider | None = None
        if source is not None:
            if not is_url(source) and not Path(source).exists():
                raise SettingsError(
                    f"feed {source} does not exist: expected a directory or zip of OSV records, "
                    "a feed store directory, or an http(s) URL"
                )
            reevaluation = self.reevaluation
            if reevaluation is not None and reevaluation.feeds is not None:
                # The scanner matches against the feed the re-evaluation scheduler polls.
                feeds = reevaluation.feeds
            else:
                feeds = FeedProvider(source, store_dir=self.settings.feed_store)
        scanner = ImageScanner(
            client,
            feeds,
            ScanStore(self.store.engine),
            timeout=self.settings.scan_timeout_seconds,
        )
        scanning_rules = [rule.name for rule in self.policy.rules if rule.vulnerabilities]
        if feeds is None and scanning_rules:
            logger.warning(
                "no vulnerability feed (--feed): rules %s treat every image as unscanned",
                ", ".join(scanning_rules),
            )
        scanner.load_feed_in_background()
        return scanner

    def _scan_after_push(self, send: Send, repository: str, reference: str) -> Send:
        """Wrap `send` so that a manifest pushed under a scanning rule is scanned in the background
        and added to the re-evaluation portfolio."""
        assert self.decider is not None
        rule = self.decider.rule_for(repository)
        scanner = self.scanner
        if rule is None or rule.vulnerabilities is None or scanner is None:
            return send
        reevaluation = self.reevaluation

        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 201:
                digest = dict(message.get("headers", [])).get(b"docker-content-digest", b"")
                if is_digest(digest.decode("latin-1")):
                    assert scanner is not None
                    scanner.scan_in_background(repository, digest.decode("latin-1"))
                    if reevaluation is not None:
                        reevaluation.saw_push(repository, reference, digest.decode("latin-1"))
            await send(message)

        return watching_send

    def _apply_policy(self, policy: Policy) -> None:
        """Switch the gate, and its admission endpoints, to a reloaded policy."""
        self.policy = policy
        if self.decider is not None:
            self.decider.replace_policy(policy)
        if self.admission is not None:
            from regward.gate.wiring import build_admission

            try:
                self.admission = build_admission(self)
            except RegwardError as exc:
                logger.error("admission settings of the reloaded policy are invalid: %s", exc)

    async def shutdown(self) -> None:
        """Flush the audit log and close the upstream client."""
        if not self._started:
            return
        if self._watcher is not None:
            await self._watcher.stop()
        if self.reevaluation is not None:
            await self.reevaluation.stop()
        if self.scanner is not None:
            await self.scanner.close()
        self.audit.stop()
        if self._fetcher is not None:
            self._fetcher.close()
        if self.client is not None:
            await self.client.close()
        if self._session is not None:
            await self._session.close()
        self.store.close()
        self._started = False
        logger.info("gate stopped")

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if not self._started:
            await self.startup()
        rid = _client_request_id(header(scope, b"x-request-id")) or (
            f"{self._id_prefix}-{next(self._id_counter):x}"
        )
        token = request_id.set(rid)
        started = time.perf_counter()
        status_holder = [0]

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
            await send(message)

        try:
            await self._dispatch(scope, receive, tracked_send, rid)
        except Exception:
            logger.exception("request %s %s failed", scope["method"], scope["path"])
            if status_holder[0] == 0:
                await send_error(tracked_send, 500, "UNKNOWN", "internal error in regward")
        finally:
            self.metrics.observe(scope["method"], status_holder[0], time.perf_counter() - started)
            request_id.reset(token)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    logger.exception("gate failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/healthz":
            await send_response(send, 200, b"ok\n", content_type=b"text/plain")
            return
        if path == "/metrics":
            body, content_type = self.metrics.render(self)
            await send_response(send, 200, body, content_type=content_type)
            return
        if path.startswith("/token") and self.auth is not None:
            await self._token(scope, receive, send)
            return
        if path == "/regward/v1/promotions":
            from regward.promotion.gateapi import handle_promotion

            await handle_promotion(self, scope, receive, send)
            return
        if path.startswith(("/admission/", "/gatekeeper/")) and self.admission is not None:
            await self.admission.handle(scope, receive, send)
            return
        if not path.startswith("/v2"):
            await send_error(send, 404, "NOT_FOUND", f"no such endpoint: {path}")
            return

        route = match_route(path)
        context = RequestContext(
            client_address=_client_address(scope), identity=None, request_id=rid
        )
        if self.auth is not None:
            result = self.auth.authorize(
                method,
                path,
                header(scope, b"authorization"),
                context.client_address,
                query_string=scope.get("query_string", b""),
            )
            if not result.allowed:
                await send_response(
                    send,
                    result.status,
                    result.body,
                    [(k.lower().encode(), v.encode()) for k, v in result.headers],
                    content_type=b"application/json",
                    head=method == "HEAD",
                )
                return
            context.identity = result.identity

        if route.kind == "base":
            await send_response(send, 200, b"{}", content_type=b"application/json")
        elif route.kind == "manifest":
            await self._manifest(scope, receive, send, route, context)
        elif route.kind == "blob":
            await self._blob(scope, send, route, context)
        elif route.kind in ("upload", "tags", "referrers", "catalog"):
            await self.forward(scope, receive, send)
        else:
            await send_error(send, 404, "NAME_INVALID", f"invalid repository name or path: {path}")

    # -- manifests ------------------------------------------------------------------------

    async def _manifest(
        self, scope: Scope, receive: Receive, send: Send, route: Route, context: RequestContext
    ) -> None:
        method = scope["method"]
        assert self.decider is not None and self.push is not None
        if method in ("GET", "HEAD"):
            head = method == "HEAD"
            outcome = await self.decider.decide_pull(route.name, route.reference, context)
            if self.reevaluation is not None and outcome.status in (200, 403):
                self.reevaluation.saw_pull(route.name, route.reference, outcome.digest)
            if outcome.status == 200:
                headers = [
                    (b"docker-content-digest", outcome.digest.encode()),
                    (b"etag", f'"{outcome.digest}"'.encode()),
                ]
                if outcome.warning:
                    headers.append((b"warning", _warning_value(outcome.warning)))
                await send_response(
                    send,
                    200,
                    outcome.raw,
                    headers,
                    content_type=outcome.media_type.encode(),
                    head=head,
                )
                return
            detail = None
            if outcome.decision is not None:
                detail = {
                    "rule": outcome.decision.rule,
                    "digest": outcome.digest,
                    "reasons": [
                        {"code": r.code, "message": r.message, "fix": r.fix}
                        for r in outcome.decision.reasons
                    ],
                }
            await send_error(
                send, outcome.status, outcome.error_code, outcome.message, detail, head=head
            )
            return
        if method == "PUT":
            watched = self._scan_after_push(send, route.name, route.reference)
            await self.push.put_manifest(scope, receive, watched, route, context)
            return
        if method == "DELETE":
            await self.push.delete_manifest(scope, send, route, context)
            return
        await send_error(send, 405, "UNSUPPORTED", f"method {method} is not allowed on manifests")

    # -- blobs ----------------------------------------------------------------------------

    async def _blob(self, scope: Scope, send: Send, route: Route, context: RequestContext) -> None:
        method = scope["method"]
        assert self.decider is not None and self.client is not None
        if method in ("DELETE", "HEAD"):
            # HEAD only reports whether a blob exists, which pushing clients ask before uploading;
            # the content itself is served by GET, which is the request that is checked.
            await self.forward(scope, None, send)
            return
        if method != "GET":
            await send_error(send, 405, "UNSUPPORTED", f"method {method} is not allowed on blobs")
            return
        if not is_digest(route.reference):
            await send_error(send, 400, "DIGEST_INVALID", f"invalid digest {route.reference!r}")
            return
        open_blobs = self.decider.policy.blobs is BlobAccess.OPEN
        if not open_blobs and not self.decider.blob_allowed(route.name, route.reference):
            message = (
                f"blob {route.reference} is not part of a manifest allowed in {route.name}: "
                "pull the image's manifest through the gate first"
            )
            await send_error(send, 403, "DENIED", message)
            return
        splice = scope.get("extensions", {}).get(SPLICE_EXTENSION)
        if splice is not None and header(scope, b"range") is None:
            await self._relay_blob(scope, send, route, splice)
            return
        await self.forward(scope, None, send)

    async def _relay_blob(self, scope: Scope, send: Send, route: Route, splice: Splice) -> None:
        """Relay a whole blob, moving the body with splice() when both sides are plain TCP."""
        assert self.client is not None
        try:
            response = await self.client.open_blob(route.name, route.reference)
        except OCIError as exc:
            status = 404 if isinstance(exc, NotFoundError) else 503
            code = "BLOB_UNKNOWN" if status == 404 else "UNAVAILABLE"
            message = redact_upstream(f"blob {route.reference}: {exc}", self.client.base_url)
            await send_error(send, status, code, message)
            return
        try:
            length = response.content_length
            connection = response.connection
            transport = connection.transport if connection is not None else None
            source = transport.get_extra_info("socket") if transport is not None else None
            plain_tcp = transport is not None and transport.get_extra_info("sslcontext") is None
            if response.status != 200 or length is None or source is None or not plain_tcp:
                await self._stream_response(response, send, "GET")
                return
            # Take what aiohttp already read, then stop it reading, with no await in between, so
            # every later body byte is still in the socket for splice().
            buffered = response.content.read_nowait(-1)
            transport.pause_reading()  # type: ignore[union-attr]
            headers = [API_HEADER, (b"content-length", str(length).encode())]
            for key in ("Content-Type", "Docker-Content-Digest", "ETag", "Accept-Ranges"):
                value = response.headers.get(key)
                if value is not None:
                    headers.append((key.lower().encode(), value.encode("latin-1")))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if buffered:
                await send({"type": "http.response.body", "body": buffered, "more_body": True})
            remaining = length - len(buffered)
            if remaining > 0:
                await splice(source.fileno(), remaining)
            await send({"type": "http.response.body", "body": b""})
        finally:
            # The upstream connection's parser state no longer matches its socket, so it is closed
            # instead of going back to the pool.
            response.close()

    # -- pass-through ---------------------------------------------------------------------

    async def forward(self, scope: Scope, receive: Receive | None, send: Send) -> None:
        """Relay the request to the upstream and stream its response back."""
        assert self.client is not None
        method: str = scope["method"]
        path: str = scope["path"]
        query: bytes = scope.get("query_string", b"")
        target = path + ("?" + query.decode("latin-1") if query else "")
        headers = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope["headers"]
            if key not in _HOP_BY_HOP
        }
        data: AsyncIterator[bytes] | None = None
        has_body = header(scope, b"content-length") not in (None, "0") or (
            header(scope, b"transfer-encoding") is not None
        )
        if receive is not None and has_body:
            data = _request_chunks(receive)
        try:
            response = await self.client.request(
                method, target, headers=headers, data=data, allow_redirects=False
            )
        except OCIError as exc:
            logger.warning("upstream request %s %s failed: %s", method, path, exc)
            message = redact_upstream(f"upstream registry unavailable: {exc}", self.client.base_url)
            await send_error(send, 503, "UNAVAILABLE", message)
            return
        try:
            await self._stream_response(response, send, method)
        finally:
            response.release()

    async def _stream_response(
        self, response: aiohttp.ClientResponse, send: Send, method: str
    ) -> None:
        """Send an upstream response's status, headers and body to the client."""
        out_headers = [API_HEADER]
        for key, value in response.headers.items():
            lower = key.lower()
            if lower in _RESPONSE_SKIP or lower == "docker-distribution-api-version":
                continue
            if lower == "location":
                value = self._relative_location(value)
            out_headers.append((lower.encode("latin-1"), value.encode("latin-1")))
        await send(
            {"type": "http.response.start", "status": response.status, "headers": out_headers}
        )
        if method == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        async for chunk in response.content.iter_chunked(RELAY_CHUNK):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    def _relative_location(self, value: str) -> str:
        upstream = self.settings.upstream
        if value.startswith(upstream):
            return value[len(upstream) :] or "/"
        return value

    async def _token(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/token/jwks":
            await send_response(send, 200, self.auth.jwks(), content_type=b"application/json")
            return
        try:
            body = await read_body(receive, 64 * 1024)
        except BodyTooLargeError as exc:
            await send_error(send, 413, "SIZE_INVALID", str(exc))
            return
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        response = await self.auth.token_endpoint(
            scope["method"], scope.get("query_string", b""), headers, body, _client_address(scope)
        )
        await send_response(
            send,
            response.status,
            response.body,
            [(k.lower().encode(), v.encode()) for k, v in response.headers],
        )


async def _request_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected during the upload")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _client_request_id(value: str | None) -> str | None:
    """Accept a client's X-Request-Id only if it is short and plain, since it reaches the logs."""
    if value is not None and _REQUEST_ID_RE.fullmatch(value):
        return value
    return None


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    if client:
        return str(client[0])
    return ""


def _warning_value(message: str) -> bytes:
    text = message.replace('"', "'").replace("\r", " ").replace("\n", " ")
    return f'299 - "{text}"'.encode("latin-1", "replace")


def _redact_url(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def create_app(settings: GateSettings) -> Gate:
    """Build the gate application from its settings (the policy is loaded and validated now)."""
    return Gate(settings)
