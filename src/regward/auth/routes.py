"""Map an OCI distribution API request (method, path, query) to the access it needs.

The path patterns are the same as the gate's router, so both agree on the repository a request
touches. Reads (GET, HEAD) of manifests, blobs, tags and referrers need pull, DELETE of manifests
and blobs needs delete, and every other method, including all upload requests, needs push. A
cross-repository mount (`POST …/blobs/uploads/?mount=<digest>&from=<repo>`) also needs pull on the
source repository.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import parse_qs

from regward.auth.scope import MAX_NAME_LENGTH, Action, is_repository_name

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

_READS = frozenset({"GET", "HEAD"})


class AccessKind(enum.StrEnum):
    """The kind of access a request needs from the caller's identity."""

    BASE = "base"
    """`/v2/`: any authenticated identity."""
    CATALOG = "catalog"
    """`/v2/_catalog`: the `registry:catalog:*` scope."""
    REPOSITORY = "repository"
    """One action on one repository."""
    UNKNOWN = "unknown"
    """Not a distribution API path."""

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class RequiredAccess:
    """The access a request needs."""

    kind: AccessKind
    repository: str | None = None
    action: Action | None = None
    mount_from: str | None = None
    """Source repository of a cross-repository mount, which needs pull."""


def _action_for(route: str, method: str) -> Action:
    if route == "upload":
        return Action.PUSH
    if method in _READS:
        return Action.PULL
    if method == "DELETE" and route in ("manifest", "blob"):
        return Action.DELETE
    return Action.PUSH


def required_access(method: str, path: str, query_string: bytes = b"") -> RequiredAccess:
    """Return the access that `method` on `path` needs.

    Args:
        method: the HTTP method.
        path: the request path; a `?query` suffix is split off and read like `query_string`.
        query_string: the raw query string, read for the `mount` and `from` parameters.
    """
    path, _, inline_query = path.partition("?")
    query = query_string.decode("latin-1") or inline_query
    method = method.upper()

    if path in ("/v2/", "/v2"):
        return RequiredAccess(AccessKind.BASE)
    if path == "/v2/_catalog":
        return RequiredAccess(AccessKind.CATALOG)
    if not path.startswith("/v2/"):
        return RequiredAccess(AccessKind.UNKNOWN)

    for route, pattern in _ROUTES:
        found = pattern.match(path)
        if found is None:
            continue
        name = found.group("name")
        if len(name) > MAX_NAME_LENGTH:
            return RequiredAccess(AccessKind.UNKNOWN)
        action = _action_for(route, method)
        mount_from = None
        if route == "upload" and method == "POST" and query:
            params = parse_qs(query, keep_blank_values=True)
            if "mount" in params or "from" in params:
                source = params.get("from", [""])[0]
                # An invalid source name gets the empty name, which no grant matches.
                mount_from = source if is_repository_name(source) else ""
        return RequiredAccess(AccessKind.REPOSITORY, name, action, mount_from)
    return RequiredAccess(AccessKind.UNKNOWN)
