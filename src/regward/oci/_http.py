"""HTTP helpers for the registry client: address classes, `Link` headers and error bodies."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable

import aiohttp

from regward.oci._text import shown

_LINK_RE = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")
_REL_RE = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))""", re.IGNORECASE)
_MAX_ERROR_MESSAGE = 200
_CHUNK_SIZE = 64 * 1024


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    """Return True for `localhost`, 127.0.0.0/8 and ::1 (IPv6 brackets allowed)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    address = _ip_address(host)
    return address is not None and address.is_loopback


def is_internal_host(host: str) -> bool:
    """Return True for loopback, private, link-local and other non-public IP literals.

    Host names other than `localhost` return False: what they resolve to is not checked here.
    """
    if is_loopback_host(host):
        return True
    address = _ip_address(host)
    if address is None:
        return False
    return (
        address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
        or address.is_multicast
    )


def next_link(values: Iterable[str]) -> str | None:
    """Return the target of the `rel="next"` entry in `Link` header values (RFC 8288), if any."""
    for value in values:
        for match in _LINK_RE.finditer(value):
            target, params = match.group(1), match.group(2)
            for rel in _REL_RE.finditer(params):
                relations = (rel.group(1) or rel.group(2) or "").lower().split()
                if "next" in relations:
                    return target.strip()
    return None


def distribution_error(body: bytes) -> tuple[str | None, str | None]:
    """Return the first (code, message) of a distribution error body, or (None, None).

    The body is `{"errors": [{"code": "...", "message": "...", "detail": ...}]}`. The message
    comes from the registry, so it is cut short and quoted before it reaches a log.
    """
    try:
        document = json.loads(body.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return None, None
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, None
    code = errors[0].get("code")
    message = errors[0].get("message")
    code_text = code if isinstance(code, str) and code.isprintable() and len(code) <= 64 else None
    message_text = shown(message, _MAX_ERROR_MESSAGE) if isinstance(message, str) else None
    return code_text, message_text


async def read_at_most(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Read the body, stopping once it passes `limit` bytes.

    Returns:
        The bytes read and whether the body is larger than `limit`. A declared Content-Length
        above the limit counts as larger without reading anything.

    Raises:
        aiohttp.ClientError: the body ended early or the connection failed.
        TimeoutError: a read timed out.
    """
    declared = response.content_length
    if declared is not None and declared > limit:
        return b"", True
    buffer = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK_SIZE):
        buffer += chunk
        if len(buffer) > limit:
            return bytes(buffer), True
    return bytes(buffer), False
