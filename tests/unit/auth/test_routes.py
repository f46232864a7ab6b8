"""Mapping distribution API requests to the access they need."""

from __future__ import annotations

import pytest

from regward.auth.routes import AccessKind, RequiredAccess, required_access
from regward.auth.scope import Action

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v2/", RequiredAccess(AccessKind.BASE)),
        ("GET", "/v2", RequiredAccess(AccessKind.BASE)),
        ("GET", "/v2/_catalog", RequiredAccess(AccessKind.CATALOG)),
        (
            "GET",
            "/v2/test/app/manifests/v1",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PULL),
        ),
        (
            "HEAD",
            "/v2/test/app/manifests/v1",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PULL),
        ),
        (
            "PUT",
            "/v2/test/app/manifests/v1",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PUSH),
        ),
        (
            "DELETE",
            f"/v2/test/app/manifests/{DIGEST}",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.DELETE),
        ),
        (
            "GET",
            f"/v2/test/app/blobs/{DIGEST}",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PULL),
        ),
        (
            "DELETE",
            f"/v2/test/app/blobs/{DIGEST}",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.DELETE),
        ),
        (
            "POST",
            "/v2/test/app/blobs/uploads/",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PUSH),
        ),
        (
            "PATCH",
            "/v2/test/app/blobs/uploads/abc-123",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PUSH),
        ),
        (
            "PUT",
            "/v2/test/app/blobs/uploads/abc-123",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PUSH),
        ),
        (
            "GET",
            "/v2/test/app/blobs/uploads/abc-123",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PUSH),
        ),
        (
            "DELETE",
            "/v2/test/app/blobs/uploads/abc-123",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PUSH),
        ),
        (
            "GET",
            "/v2/test/app/tags/list",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PULL),
        ),
        (
            "GET",
            f"/v2/test/app/referrers/{DIGEST}",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PULL),
        ),
        (
            "POST",
            "/v2/test/app/manifests/v1",
            RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PUSH),
        ),
        (
            "GET",
            "/v2/a/manifests/b/manifests/c",
            RequiredAccess(AccessKind.REPOSITORY, "a/manifests/b", Action.PULL),
        ),
        ("GET", "/v2/Test/App/manifests/v1", RequiredAccess(AccessKind.UNKNOWN)),
        ("GET", "/v2/../etc/manifests/v1", RequiredAccess(AccessKind.UNKNOWN)),
        ("GET", "/token", RequiredAccess(AccessKind.UNKNOWN)),
        ("GET", "/v2/test/app/other", RequiredAccess(AccessKind.UNKNOWN)),
    ],
)
def test_required_access(method: str, path: str, expected: RequiredAccess) -> None:
    assert required_access(method, path) == expected


def test_mount_needs_pull_on_source() -> None:
    query = f"mount={DIGEST}&from=other/app".encode()
    access = required_access("POST", "/v2/test/app/blobs/uploads/", query)
    assert access == RequiredAccess(AccessKind.REPOSITORY, "test/app", Action.PUSH, "other/app")
    inline = required_access("POST", f"/v2/test/app/blobs/uploads/?mount={DIGEST}&from=other/app")
    assert inline == access


def test_mount_with_invalid_source_gets_empty_name() -> None:
    access = required_access("POST", "/v2/test/app/blobs/uploads/", b"mount=x&from=../../etc")
    assert access.mount_from == ""


def test_same_repository_as_gate_router() -> None:
    # The gate serves the repository its own router finds; both must agree on every path.
    http = pytest.importorskip("regward.gate.http")
    paths = [
        "/v2/test/app/manifests/v1",
        f"/v2/test/app/blobs/{DIGEST}",
        "/v2/test/app/blobs/uploads/",
        "/v2/test/app/blobs/uploads/x-1",
        "/v2/test/app/tags/list",
        f"/v2/test/app/referrers/{DIGEST}",
        "/v2/a/manifests/b/manifests/c",
        "/v2/a/blobs/uploads/blobs/uploads/",
        "/v2/a/tags/list/tags/list",
        "/v2/x/" + "y/" * 200 + "tags/list",
        "/v2/Test/manifests/v1",
    ]
    for path in paths:
        route = http.match_route(path)
        access = required_access("GET", path)
        if route.kind in ("unknown",):
            assert access.kind is AccessKind.UNKNOWN, path
        else:
            assert access.repository == route.name, path
