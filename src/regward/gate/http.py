"""Small ASGI helpers for the gate: routes of the distribution API, error bodies, body reading."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Repository names per the distribution spec: lower-case components separated by `/`, each made
# of alphanumerics with single `.`, `_`, `__` or runs of `-` between them.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_REFERENCE = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}|[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"

_ROUTES = (
    ("manifest", re.compile(rf"^/v2/(?P<name>{_NAME})/manifests/(?P<ref>{_REFERENCE})$")),
    ("upload", re.compile(rf"^/v2/(?P<name>{_NAME})/blobs/uploads/(?P<rest>[A-Za-z0-9._=-]*)$")),
    ("blob", re.compile(rf"^/v2/(?P<name>{_NAME})/blobs/(?P<ref>{_REFERENCE})$")),
    ("tags", re.compile(rf"^/v2/(?P<name>{_NAME})/tags/list$")),
    ("referrers", re.compile(rf"^/v2/(?P<name>{_NAME})/referrers/(?P<ref>{_REFERENCE})$")),
)

MAX_NAME_LENGTH = 255


@dataclass(frozen=True)
class Route:
    """A parsed distribution API path."""

    kind: str
    """`base`, `catalog`, `manifest`, `upload`, `blob`, `tags`, `referrers` or `unknown`."""
    name: str = ""
    reference: str = ""


def match_route(path: str) -> Route:
    """Classify a request path of the distribution API."""
    if path in ("/v2/", "/v2"):
        return Route("base")
    if path == "/v2/_catalog":
        return Route("catalog")
    if not path.startswith("/v2/"):
        return Route("unknown")
    for kind, pattern in _ROUTES:
        found = pattern.match(path)
        if found is not None:
            name = found.group("name")
            if len(name) > MAX_NAME_LENGTH:
                return Route("unknown")
            reference = found.groupdict().get("ref") or found.groupdict().get("rest") or ""
            return Route(kind, name, reference)
    return Route("unknown")


def error_body(code: str, message: str, detail: object = None) -> bytes:
    """Return the distribution-spec error body `{"errors":[{code, message, detail}]}`."""
    entry: dict[str, object] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return json.dumps({"errors": [entry]}, ensure_ascii=False).encode()


API_HEADER = (b"docker-distribution-api-version", b"registry/2.0")


async def send_response(
    send: Send,
    status: int,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    content_type: bytes | None = None,
    head: bool = False,
) -> None:
    """Send a whole response; for HEAD the body is omitted but Content-Length is kept."""
    response_headers = [API_HEADER, (b"content-length", str(len(body)).encode())]
    if content_type is not None:
        response_headers.append((b"content-type", content_type))
    if headers:
        response_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    detail: object = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    head: bool = False,
) -> None:
    """Send a distribution-spec error response."""
    await send_response(
        send,
        status,
        error_body(code, message, detail),
        headers,
        content_type=b"application/json",
        head=head,
    )


class BodyTooLargeError(Exception):
    """A request body exceeded the cap set for its route."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """Read the whole request body, raising BodyTooLargeError past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client disconnected while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def header(scope: Scope, name: bytes) -> str | None:
    """Return the first value of a request header (name in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
