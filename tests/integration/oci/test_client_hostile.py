"""RegistryClient against upstreams that misbehave as a real registry never would.

Each test serves scripted responses from 127.0.0.1: wrong digests, oversized and truncated bodies,
stalls, server errors, hostile redirects and `Link` headers, broken token services.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from regward.oci.client import ClientLimits, Credentials, RegistryClient
from regward.oci.digest import compute_digest, referrers_tag
from regward.oci.errors import (
    AuthenticationError,
    DigestMismatchError,
    ManifestError,
    NotFoundError,
    RegistryError,
    RegistryUnavailableError,
    TooLargeError,
)
from regward.oci.mediatypes import DOCKER_MANIFEST_V1_SIGNED, OCI_INDEX, OCI_MANIFEST
from tests.integration.oci.servers import serve, serve_raw

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/x-config", "digest": "sha256:" + "1" * 64, "size": 2},
        "layers": [],
    }
).encode()
DIGEST = compute_digest(MANIFEST)
OTHER_DIGEST = compute_digest(b"other")
BLOB = b"blob content " * 100
BLOB_DIGEST = compute_digest(BLOB)
FAST = ClientLimits(connect_timeout=1.0, read_timeout=0.3, total_timeout=2.0)


def app_with(routes: dict[str, Handler]) -> web.Application:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    return app


def manifest_response(body: bytes = MANIFEST, **headers: str) -> web.Response:
    merged = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": compute_digest(body)}
    merged.update(headers)
    return web.Response(body=body, headers=merged)


# Digests.


async def test_wrong_docker_content_digest_by_tag() -> None:
    async def handler(request: web.Request) -> web.Response:
        return manifest_response(**{"Docker-Content-Digest": OTHER_DIGEST})

    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(DigestMismatchError, match="Docker-Content-Digest") as caught:
                await client.get_manifest("app", "v1")
    assert caught.value.expected == OTHER_DIGEST
    assert caught.value.actual == DIGEST


async def test_invalid_docker_content_digest() -> None:
    async def handler(request: web.Request) -> web.Response:
        return manifest_response(**{"Docker-Content-Digest": "sha256:short"})

    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(DigestMismatchError, match="invalid Docker-Content-Digest"):
                await client.get_manifest("app", "v1")


async def test_body_not_matching_requested_digest() -> None:
    # The upstream responds to a digest request with other bytes and a header that matches them.
    async def handler(request: web.Request) -> web.Response:
        return manifest_response()

    async with serve(app_with({f"/v2/app/manifests/{OTHER_DIGEST}": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(DigestMismatchError) as caught:
                await client.get_manifest("app", OTHER_DIGEST)
    assert caught.value.expected == OTHER_DIGEST
    assert caught.value.actual == DIGEST
    assert f"app@{OTHER_DIGEST}" in str(caught.value)


async def test_manifest_without_digest_header_by_tag() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=MANIFEST, content_type=OCI_MANIFEST)

    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url) as client:
            fetched = await client.get_manifest("app", "v1")
    assert fetched.digest == DIGEST


async def test_blob_with_wrong_content() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=BLOB[:-1] + b"X")

    async with serve(app_with({f"/v2/app/blobs/{BLOB_DIGEST}": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(DigestMismatchError, match=f"blob .*app@{BLOB_DIGEST}"):
                await client.get_blob("app", BLOB_DIGEST)


async def test_head_manifest_wrong_digest() -> None:
    async def handler(request: web.Request) -> web.Response:
        return manifest_response(**{"Docker-Content-Digest": OTHER_DIGEST})

    async with serve(app_with({f"/v2/app/manifests/{DIGEST}": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(DigestMismatchError, match="the registry reports"):
                await client.head_manifest("app", DIGEST)


# Bodies that are too large, truncated or wrongly typed.


async def test_oversized_manifest_by_content_length() -> None:
    big = b" " * 5000

    async def handler(request: web.Request) -> web.Response:
        return manifest_response(big)

    limits = ClientLimits(max_manifest_size=4096)
    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url, limits=limits) as client:
            with pytest.raises(TooLargeError, match="5000 bytes, the maximum is 4096") as caught:
                await client.get_manifest("app", "v1")
    assert caught.value.size == 5000


async def test_oversized_manifest_streamed_without_length() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": OCI_MANIFEST})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b" " * 1024)
        await response.write_eof()
        return response

    limits = ClientLimits(max_manifest_size=4096)
    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url, limits=limits) as client:
            with pytest.raises(TooLargeError, match="the maximum is 4096") as caught:
                await client.get_manifest("app", "v1")
    assert caught.value.size is None


async def test_truncated_blob() -> None:
    def respond(head: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            + f"Content-Length: {len(BLOB)}\r\n\r\n".encode()
            + BLOB[: len(BLOB) // 2]
        )

    async with serve_raw(respond) as url:
        async with RegistryClient(url, limits=FAST) as client:
            with pytest.raises(RegistryUnavailableError, match="could not fetch blob"):
                await client.get_blob("app", BLOB_DIGEST)


async def test_blob_closed_early_without_length() -> None:
    def respond(head: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BLOB[:100]

    async with serve_raw(respond) as url:
        async with RegistryClient(url, limits=FAST) as client:
            with pytest.raises(DigestMismatchError):
                await client.get_blob("app", BLOB_DIGEST)


async def test_compressed_manifest_rejected() -> None:
    async def handler(request: web.Request) -> web.Response:
        return manifest_response(**{"Content-Encoding": "gzip"})

    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(RegistryError, match="unexpected Content-Encoding 'gzip'"):
                await client.get_manifest("app", "v1")


async def test_content_type_contradicting_body() -> None:
    async def handler(request: web.Request) -> web.Response:
        return manifest_response(**{"Content-Type": OCI_INDEX})

    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(ManifestError, match="contradicts Content-Type"):
                await client.get_manifest("app", "v1")


async def test_schema1_manifest_rejected() -> None:
    body = json.dumps({"schemaVersion": 1, "name": "app", "tag": "v1", "fsLayers": []}).encode()

    async def handler(request: web.Request) -> web.Response:
        return manifest_response(body, **{"Content-Type": DOCKER_MANIFEST_V1_SIGNED})

    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(ManifestError, match="Docker schema 1"):
                await client.get_manifest("app", "v1")


# Stalls and timeouts.


async def test_stall_before_headers_times_out() -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return manifest_response()

    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url, limits=FAST) as client:
            start = time.monotonic()
            with pytest.raises(RegistryUnavailableError, match="timed out"):
                await client.get_manifest("app", "v1")
    assert time.monotonic() - start < 2.0


async def test_stall_mid_body_times_out() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(BLOB))})
        await response.prepare(request)
        await response.write(BLOB[:10])
        await asyncio.sleep(30)
        return response

    async with serve(app_with({f"/v2/app/blobs/{BLOB_DIGEST}": handler})) as url:
        async with RegistryClient(url, limits=FAST) as client:
            start = time.monotonic()
            with pytest.raises(RegistryUnavailableError, match="timed out"):
                await client.get_blob("app", BLOB_DIGEST)
    assert time.monotonic() - start < 2.0


async def test_slow_drip_hits_total_timeout() -> None:
    # Each read arrives within read_timeout, but the whole body takes longer than total.
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(BLOB))})
        await response.prepare(request)
        for byte in BLOB:
            await response.write(bytes([byte]))
            await asyncio.sleep(0.05)
        return response

    limits = ClientLimits(read_timeout=0.5, total_timeout=0.6)
    async with serve(app_with({f"/v2/app/blobs/{BLOB_DIGEST}": handler})) as url:
        async with RegistryClient(url, limits=limits) as client:
            start = time.monotonic()
            with pytest.raises(RegistryUnavailableError, match="timed out"):
                await client.get_blob("app", BLOB_DIGEST)
    assert time.monotonic() - start < 2.0


async def test_connection_refused_is_unavailable() -> None:
    async with serve(app_with({})) as url:
        pass  # the port is closed again
    async with RegistryClient(url, limits=FAST) as client:
        with pytest.raises(RegistryUnavailableError, match="could not reach registry") as caught:
            await client.get_manifest("app", "v1")
    assert caught.value.status_code is None


# Error statuses.


@pytest.mark.parametrize(
    ("status", "error", "match"),
    [
        (500, RegistryUnavailableError, "registry returned HTTP 500"),
        (502, RegistryUnavailableError, "registry returned HTTP 502"),
        (503, RegistryUnavailableError, "registry returned HTTP 503 UNAVAILABLE: 'down'"),
        (429, RegistryUnavailableError, "HTTP 429 TOOMANYREQUESTS"),
        (403, AuthenticationError, "denied \\(HTTP 403 DENIED"),
        (404, NotFoundError, "not found \\(HTTP 404 MANIFEST_UNKNOWN"),
        (400, RegistryError, "rejected the request for manifest"),
    ],
)
async def test_error_statuses(status: int, error: type[Exception], match: str) -> None:
    codes = {503: "UNAVAILABLE", 429: "TOOMANYREQUESTS", 403: "DENIED", 404: "MANIFEST_UNKNOWN"}

    async def handler(request: web.Request) -> web.Response:
        body = {"errors": [{"code": codes.get(status, "UNKNOWN"), "message": "down"}]}
        return web.json_response(body, status=status)

    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(error, match=match) as caught:
                await client.get_manifest("app", "v1")
    assert type(caught.value) is error
    assert isinstance(caught.value, RegistryError)
    assert caught.value.status_code == status
    assert caught.value.url.endswith("/v2/app/manifests/v1")


async def test_open_blob_server_error() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>")

    async with serve(app_with({f"/v2/app/blobs/{BLOB_DIGEST}": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(RegistryUnavailableError) as caught:
                await client.open_blob("app", BLOB_DIGEST)
    assert caught.value.code is None


async def test_hostile_error_message_is_quoted_and_cut() -> None:
    async def handler(request: web.Request) -> web.Response:
        body = {"errors": [{"code": "X\nY", "message": "line\r\nInjected: " + "a" * 1000}]}
        return web.json_response(body, status=404)

    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(NotFoundError) as caught:
                await client.get_manifest("app", "v1")
    message = str(caught.value)
    assert "\n" not in message
    assert "\\r\\nInjected" in message
    assert len(message) < 400
    assert caught.value.code is None


# Redirects.


async def test_redirect_drops_credentials_for_other_origin() -> None:
    seen: list[str | None] = []

    async def cdn(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=BLOB)

    async with serve(app_with({"/blob": cdn})) as cdn_url:

        async def registry(request: web.Request) -> web.Response:
            if "Authorization" not in request.headers:
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="r"'})
            raise web.HTTPTemporaryRedirect(f"{cdn_url}/blob?X-Signature=secret")

        credentials = Credentials("user", "pass")
        async with serve(app_with({f"/v2/app/blobs/{BLOB_DIGEST}": registry})) as url:
            async with RegistryClient(url, credentials=credentials) as client:
                assert await client.get_blob("app", BLOB_DIGEST) == BLOB
    assert seen == [None]


async def test_redirect_loop_stops() -> None:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound(str(request.url))

    limits = ClientLimits(max_redirects=3)
    async with serve(app_with({f"/v2/app/blobs/{BLOB_DIGEST}": handler})) as url:
        async with RegistryClient(url, limits=limits) as client:
            with pytest.raises(RegistryError, match="more than 3 redirects"):
                await client.get_blob("app", BLOB_DIGEST)


async def test_redirect_without_location() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=302)

    async with serve(app_with({f"/v2/app/blobs/{BLOB_DIGEST}": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(RegistryError, match="without a Location header"):
                await client.get_blob("app", BLOB_DIGEST)


async def test_redirect_to_other_scheme() -> None:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPFound("file:///etc/passwd")

    async with serve(app_with({f"/v2/app/blobs/{BLOB_DIGEST}": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(RegistryError, match="expected an http\\(s\\) URL"):
                await client.get_blob("app", BLOB_DIGEST)


async def test_request_without_redirects_returns_3xx() -> None:
    async def handler(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/elsewhere")

    async with serve(app_with({"/v2/app/blobs/{digest}": handler})) as url:
        async with RegistryClient(url) as client:
            response = await client.request(
                "GET", f"/v2/app/blobs/{BLOB_DIGEST}", allow_redirects=False
            )
            try:
                assert response.status == 307
                assert response.headers["Location"] == "/elsewhere"
            finally:
                response.release()


# Tag list pagination.


def paged_tags(pages: list[tuple[object, str | None]]) -> Handler:
    """Serve `pages` in order by the `page` query parameter: (tags value, Link header)."""

    async def handler(request: web.Request) -> web.Response:
        tags, link = pages[int(request.query.get("page", "0"))]
        headers = {"Link": link} if link else {}
        return web.json_response({"name": "app", "tags": tags}, headers=headers)

    return handler


async def test_tags_follow_link_pages() -> None:
    pages: list[tuple[object, str | None]] = [
        (["a", "b"], '</v2/app/tags/list?page=1&n=2>; rel="next"'),
        (["c", "d"], '</v2/app/tags/list?page=2&n=2>; rel="next"'),
        (["e"], None),
    ]
    async with serve(app_with({"/v2/app/tags/list": paged_tags(pages)})) as url:
        async with RegistryClient(url) as client:
            assert await client.list_tags("app", page_size=2) == ["a", "b", "c", "d", "e"]


async def test_tags_absolute_link_same_origin() -> None:
    pages: list[tuple[object, str | None]] = []
    async with serve(app_with({"/v2/app/tags/list": paged_tags(pages)})) as url:
        # The Link is absolute and lists two relations; the last page has "tags": null.
        pages.append((["a"], f'<{url}/v2/app/tags/list?page=1>; rel="prev next"'))
        pages.append((None, None))
        async with RegistryClient(url) as client:
            assert await client.list_tags("app") == ["a"]


async def test_tags_limit_across_pages() -> None:
    pages: list[tuple[object, str | None]] = [
        (["a", "b"], '</v2/app/tags/list?page=1>; rel="next"'),
        (["c", "d"], None),
    ]
    async with serve(app_with({"/v2/app/tags/list": paged_tags(pages)})) as url:
        async with RegistryClient(url, limits=ClientLimits(max_tags=3)) as client:
            with pytest.raises(TooLargeError, match="more than 3 tags"):
                await client.list_tags("app")


@pytest.mark.parametrize(
    ("pages", "match"),
    [
        ([(["a"], '<http://203.0.113.9/v2/app/tags/list?page=1>; rel="next"')], "outside"),
        ([(["a"], '</v2/app/tags/list>; rel="next"')], "pagination returned to"),
        ([([], '</v2/app/tags/list?page=1>; rel="next"')], "empty page links"),
        ([(["a", "bad tag"], None)], "invalid tag 'bad tag'"),
        ([(["a", 5], None)], "tag 5 is not a string"),
        ([("a", None)], "'tags' is not an array"),
        ([(["a"], '</other/path>; rel="next"')], "outside"),
    ],
)
async def test_tags_hostile_pages(pages: list[tuple[object, str | None]], match: str) -> None:
    async with serve(app_with({"/v2/app/tags/list": paged_tags(pages)})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(RegistryError, match=match):
                await client.list_tags("app")


async def test_tags_not_json() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="<html>", content_type="text/html")

    async with serve(app_with({"/v2/app/tags/list": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(RegistryError, match="not valid JSON"):
                await client.list_tags("app")


# Referrers API served by the upstream.


def referrer_manifest(artifact_type: str | None, config_type: str) -> bytes:
    body: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": "sha256:" + "4" * 64, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": len(MANIFEST)},
    }
    if artifact_type:
        body["artifactType"] = artifact_type
    return json.dumps(body).encode()


async def test_referrers_api_used_and_filled() -> None:
    with_type = referrer_manifest("application/vnd.example.a", "application/vnd.oci.empty.v1+json")
    without_type = referrer_manifest(None, "application/vnd.example.b")
    manifests = {compute_digest(with_type): with_type, compute_digest(without_type): without_type}
    queries: list[str] = []

    async def referrers(request: web.Request) -> web.Response:
        queries.append(request.query_string)
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw)}
                for digest, raw in manifests.items()
            ],
        }
        return web.json_response(index, content_type=OCI_INDEX)

    async def manifest(request: web.Request) -> web.Response:
        return manifest_response(manifests[request.match_info["digest"]])

    routes = {f"/v2/app/referrers/{DIGEST}": referrers, "/v2/app/manifests/{digest}": manifest}
    async with serve(app_with(routes)) as url:
        async with RegistryClient(url) as client:
            found = await client.referrers("app", DIGEST)
            filtered = await client.referrers(
                "app", DIGEST, artifact_type="application/vnd.example.b"
            )
    assert sorted(d.artifact_type or "" for d in found) == [
        "application/vnd.example.a",
        "application/vnd.example.b",
    ]
    assert [d.digest for d in filtered] == [compute_digest(without_type)]
    assert queries == ["", "artifactType=application/vnd.example.b"]


async def test_referrers_api_html_falls_back_to_tag() -> None:
    tag_requests: list[str] = []

    async def referrers(request: web.Request) -> web.Response:
        return web.Response(text="<html>welcome</html>", content_type="text/html")

    async def tag(request: web.Request) -> web.Response:
        tag_requests.append(request.path)
        return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)

    routes = {
        f"/v2/app/referrers/{DIGEST}": referrers,
        f"/v2/app/manifests/{referrers_tag(DIGEST)}": tag,
    }
    async with serve(app_with(routes)) as url:
        async with RegistryClient(url) as client:
            assert await client.referrers("app", DIGEST) == []
    assert tag_requests == [f"/v2/app/manifests/{referrers_tag(DIGEST)}"]


async def test_referrers_api_server_error_does_not_fall_back() -> None:
    async def referrers(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async with serve(app_with({f"/v2/app/referrers/{DIGEST}": referrers})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(RegistryUnavailableError):
                await client.referrers("app", DIGEST)


# Authentication against hostile token services and challenges.


def challenging_registry(challenge: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "").startswith("Bearer "):
            return manifest_response()
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})

    return handler


@pytest.mark.parametrize(
    ("token_body", "status", "error", "match"),
    [
        (b"not json", 200, AuthenticationError, "not valid JSON"),
        (b"[]", 200, AuthenticationError, "not a JSON object"),
        (b'{"token": ""}', 200, AuthenticationError, "no usable token"),
        (b'{"token": "a\\r\\nInjected: x"}', 200, AuthenticationError, "no usable token"),
        (b'{"token": 5}', 200, AuthenticationError, "no usable token"),
        (b"{}", 500, RegistryUnavailableError, "HTTP 500"),
        (b"{}", 403, AuthenticationError, "rejected the request"),
        (b"{}", 302, AuthenticationError, "returned HTTP 302"),
    ],
)
async def test_hostile_token_service(
    token_body: bytes, status: int, error: type[Exception], match: str
) -> None:
    async def token(request: web.Request) -> web.Response:
        return web.Response(body=token_body, status=status, content_type="application/json")

    async with serve(app_with({"/token": token})) as auth_url:
        challenge = f'Bearer realm="{auth_url}/token",service="svc"'
        async with serve(
            app_with({"/v2/app/manifests/v1": challenging_registry(challenge)})
        ) as url:
            async with RegistryClient(url) as client:
                with pytest.raises(error, match=match):
                    await client.get_manifest("app", "v1")


async def test_token_request_parameters_and_quoted_commas() -> None:
    seen: list[tuple[str, list[str], str | None]] = []

    async def token(request: web.Request) -> web.Response:
        seen.append(
            (
                request.query.get("service", ""),
                request.query.getall("scope", []),
                request.headers.get("Authorization"),
            )
        )
        return web.json_response({"access_token": "abc.def.ghi"})

    async with serve(app_with({"/token": token})) as auth_url:
        challenge = (
            f'Basic realm="x", Bearer realm="{auth_url}/token?existing=1",'
            'service="svc, with comma",scope="repository:app:pull repository:other:pull"'
        )
        credentials = Credentials("user", "pa:ss")
        async with serve(
            app_with({"/v2/app/manifests/v1": challenging_registry(challenge)})
        ) as url:
            async with RegistryClient(url, credentials=credentials) as client:
                fetched = await client.get_manifest("app", "v1")
    assert fetched.digest == DIGEST
    expected_basic = "Basic " + base64.b64encode(b"user:pa:ss").decode()
    assert seen == [
        ("svc, with comma", ["repository:app:pull", "repository:other:pull"], expected_basic)
    ]


@pytest.mark.parametrize(
    ("challenge", "match"),
    [
        ('Bearer realm="unterminated', "unterminated quoted string"),
        ('Bearer realm="a", realm="b"', "repeated"),
        ('Bearer service="svc"', "without a realm"),
        ('Bearer realm="ftp://127.0.0.1/token"', "expected an http or https URL"),
        ('Bearer realm="http://user:pw@127.0.0.1/token"', "user info is not allowed"),
        ("Negotiate abc==", "no supported challenge \\(schemes: negotiate\\)"),
        ("", "no supported challenge \\(schemes: none\\)"),
        ('Basic realm="r"', "requires credentials"),
    ],
)
async def test_unusable_challenges(challenge: str, match: str) -> None:
    handler = challenging_registry(challenge)
    async with serve(app_with({"/v2/app/manifests/v1": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(AuthenticationError, match=match) as caught:
                await client.get_manifest("app", "v1")
    assert caught.value.status_code in (None, 401)


# HEAD responses missing headers, and streamed bodies that meet a late 401.


async def test_head_without_digest_header_by_tag() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=MANIFEST, content_type=OCI_MANIFEST)

    async with serve(app_with({"/v2/app/manifests/{reference}": handler})) as url:
        async with RegistryClient(url) as client:
            with pytest.raises(RegistryError, match="no Docker-Content-Digest header"):
                await client.head_manifest("app", "v1")
            by_digest = await client.head_manifest("app", DIGEST)
    assert by_digest is not None
    assert by_digest.digest == DIGEST
    assert by_digest.size == len(MANIFEST)


async def test_head_without_content_length() -> None:
    def respond(head: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
            + f"Content-Type: {OCI_MANIFEST}\r\nDocker-Content-Digest: {DIGEST}\r\n\r\n".encode()
        )

    async with serve_raw(respond) as url:
        async with RegistryClient(url, limits=FAST) as client:
            with pytest.raises(RegistryError, match="no Content-Length header"):
                await client.head_manifest("app", "v1")


async def test_streamed_body_rejected_after_open_ping() -> None:
    pings: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        pings.append(request.method)
        return web.json_response({})

    async def upload(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    async def body() -> AsyncIterator[bytes]:
        yield b"chunk"

    routes = {"/v2/": ping, "/v2/app/blobs/uploads/{uuid}": upload}
    async with serve(app_with(routes)) as url:
        async with RegistryClient(url, credentials=Credentials("u", "p")) as client:
            for _ in range(2):
                with pytest.raises(AuthenticationError, match="cannot be sent again"):
                    await client.request("PATCH", "/v2/app/blobs/uploads/1234", data=body())
    # The open /v2/ is remembered, so the second streamed request does not ping again.
    assert pings == ["GET"]
