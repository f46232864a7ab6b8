"""Client configuration and the pure helpers behind it: no network involved."""

from __future__ import annotations

import base64

import pytest
from yarl import URL

from regward.oci._auth import TokenCache, check_realm, scope_for_request
from regward.oci._http import distribution_error, is_internal_host, is_loopback_host, next_link
from regward.oci.client import DEFAULT_USER_AGENT, ClientLimits, Credentials, RegistryClient
from regward.oci.errors import (
    AuthenticationError,
    InvalidReferenceError,
    OCIError,
    RegistryError,
)


def test_credentials_repr_hides_password() -> None:
    credentials = Credentials("alice", "s3cret")
    assert "s3cret" not in repr(credentials)
    assert "s3cret" not in str(credentials)
    assert "alice" in repr(credentials)
    assert "s3cret" not in f"{[credentials]}"


def test_credentials_basic_authorization() -> None:
    value = Credentials("alice", "pa:ss").basic_authorization()
    assert value == "Basic " + base64.b64encode(b"alice:pa:ss").decode()


def test_client_limits_defaults() -> None:
    limits = ClientLimits()
    assert (limits.connect_timeout, limits.read_timeout, limits.total_timeout) == (5.0, 30.0, 60.0)
    assert limits.max_manifest_size == 4 * 1024 * 1024
    assert limits.max_blob_size == 64 * 1024 * 1024
    assert (limits.max_tags, limits.max_referrers) == (100_000, 10_000)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("connect_timeout", 0),
        ("read_timeout", -1.0),
        ("total_timeout", True),
        ("max_manifest_size", 0),
        ("max_blob_size", 1.5),
        ("max_tags", -5),
        ("max_referrers", None),
        ("max_redirects", -1),
    ],
)
def test_client_limits_reject_invalid(field: str, value: object) -> None:
    with pytest.raises(OCIError, match=f"invalid client limit {field}="):
        ClientLimits(**{field: value})  # type: ignore[arg-type]


def test_default_user_agent_has_version() -> None:
    from regward import __version__

    assert DEFAULT_USER_AGENT == f"regward/{__version__}"


@pytest.mark.parametrize(
    ("host", "insecure", "base_url"),
    [
        ("127.0.0.1:5000", False, "http://127.0.0.1:5000"),
        ("127.8.9.10", False, "http://127.8.9.10"),
        ("localhost:5000", False, "http://localhost:5000"),
        ("[::1]:5000", False, "http://[::1]:5000"),
        ("ghcr.io", False, "https://ghcr.io"),
        ("GHCR.io:8443", False, "https://ghcr.io:8443"),
        ("10.0.0.5:5000", False, "https://10.0.0.5:5000"),
        ("registry.internal:5000", True, "http://registry.internal:5000"),
        ("docker.io", False, "https://registry-1.docker.io"),
        ("index.docker.io", False, "https://registry-1.docker.io"),
    ],
)
def test_for_registry_picks_scheme(host: str, insecure: bool, base_url: str) -> None:
    client = RegistryClient.for_registry(host, insecure=insecure)
    assert client.base_url == base_url


@pytest.mark.parametrize("host", ["bad host", "ex.com:0", "", "ex.com/path"])
def test_for_registry_rejects_invalid_host(host: str) -> None:
    with pytest.raises(InvalidReferenceError):
        RegistryClient.for_registry(host)


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("http://registry.example.com", "plain http to registry registry.example.com is not"),
        ("http://10.0.0.5:5000", "is not allowed because it is not a loopback"),
        ("ftp://127.0.0.1", "expected http"),
        ("127.0.0.1:5000", "expected http"),
        ("https://user:pw@example.com", "user info"),
        ("https://example.com/?x=1", "query"),
        ("https://example.com/prefix", "must have no path"),
    ],
)
def test_client_rejects_base_url(base_url: str, message: str) -> None:
    with pytest.raises(OCIError, match=message):
        RegistryClient(base_url)


def test_client_insecure_allows_plain_http() -> None:
    assert RegistryClient("http://registry.example.com", insecure=True).base_url == (
        "http://registry.example.com"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/v2/../admin",
        "/v2/a/%2e%2e/b",
        "/v2/a/./b",
        "//evil.example/v2/",
        "/v1/app/manifests/x",
        "http://evil.example/v2/",
        "/v2/app manifests",
        "/v2/app\r\nX: y",
        "/v2/app#fragment",
    ],
)
async def test_request_rejects_paths(path: str) -> None:
    client = RegistryClient("http://127.0.0.1:1")
    with pytest.raises(OCIError, match="invalid distribution API path"):
        await client.request("GET", path)
    await client.close()


def redirect(client: RegistryClient, current: str, location: str) -> URL:
    return client._redirect_target(URL(current), location, 302)


def test_redirect_policy_public_registry() -> None:
    client = RegistryClient("https://registry.example.com")
    base = "https://registry.example.com/v2/a/blobs/x"
    target = redirect(client, base, "https://cdn.example.net/blob?sig=1")
    assert str(target) == "https://cdn.example.net/blob?sig=1"
    assert str(redirect(client, base, "/other")) == "https://registry.example.com/other"
    with pytest.raises(RegistryError, match="must not downgrade to http"):
        redirect(client, base, "http://cdn.example.net/blob")
    for internal in ("https://127.0.0.1/x", "https://169.254.169.254/x", "https://[::1]/x"):
        with pytest.raises(RegistryError, match="internal address"):
            redirect(client, base, internal)
    with pytest.raises(RegistryError, match="internal address 10.1.2.3"):
        redirect(client, base, "https://10.1.2.3/blob")


def test_redirect_policy_loopback_registry() -> None:
    client = RegistryClient("http://127.0.0.1:5000")
    target = redirect(client, "http://127.0.0.1:5000/v2/a", "http://127.0.0.1:6000/blob")
    assert target.port == 6000


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/v2/app/manifests/v1", "repository:app:pull"),
        ("HEAD", "/v2/org/app/blobs/sha256:abc", "repository:org/app:pull"),
        ("PUT", "/v2/org/app/manifests/v1", "repository:org/app:pull,push"),
        ("POST", "/v2/org/app/blobs/uploads/", "repository:org/app:pull,push"),
        ("PATCH", "/v2/org/app/blobs/uploads/1234-abcd", "repository:org/app:pull,push"),
        ("DELETE", "/v2/org/app/manifests/sha256:abc", "repository:org/app:delete"),
        ("GET", "/v2/a/manifests/b/manifests/latest", "repository:a/manifests/b:pull"),
        ("GET", "/v2/org/app/tags/list", "repository:org/app:pull"),
        ("GET", "/v2/org/app/referrers/sha256:abc", "repository:org/app:pull"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
        ("GET", "/v2/", None),
        ("GET", "/v2/unknown/endpoint", None),
    ],
)
def test_scope_for_request(method: str, path: str, scope: str | None) -> None:
    assert scope_for_request(method, path) == scope


def test_token_cache_expiry_margin() -> None:
    cache = TokenCache()
    cache.put("scope", "token", 60, now=1000.0)
    assert cache.get("scope", now=1049.9) == "token"
    assert cache.get("scope", now=1050.0) is None
    assert cache.get("scope", now=1000.0) is None  # expired entries are removed


def test_token_cache_short_lifetime_keeps_half() -> None:
    cache = TokenCache()
    cache.put("scope", "token", 4, now=0.0)
    assert cache.get("scope", now=1.9) == "token"
    assert cache.get("scope", now=2.0) is None


def test_token_cache_discard_only_same_token() -> None:
    cache = TokenCache()
    cache.put("scope", "new", 60, now=0.0)
    cache.discard("scope", "old")
    assert cache.get("scope", now=1.0) == "new"
    cache.discard("scope", "new")
    assert cache.get("scope", now=1.0) is None


def test_check_realm() -> None:
    assert str(check_realm("https://auth.example/token", plain_http_allowed=False)) == (
        "https://auth.example/token"
    )
    assert check_realm("http://127.0.0.1:1/t", plain_http_allowed=True).scheme == "http"
    with pytest.raises(AuthenticationError, match="expected an https URL"):
        check_realm("http://auth.example/token", plain_http_allowed=False)
    with pytest.raises(AuthenticationError, match="expected an https URL"):
        check_realm("/token", plain_http_allowed=False)
    with pytest.raises(AuthenticationError, match="user info"):
        check_realm("https://u:p@auth.example/token", plain_http_allowed=False)


@pytest.mark.parametrize(
    ("values", "target"),
    [
        (['</v2/a/tags/list?n=2&last=b>; rel="next"'], "/v2/a/tags/list?n=2&last=b"),
        (["</x>; rel=next"], "/x"),
        (['</p>; rel="prev", </n>; rel="next"'], "/n"),
        (['</p>; rel="prev"', '</n>; title="t"; REL="Next"'], "/n"),
        (['</both>; rel="prev next"'], "/both"),
        (['</p>; rel="prev"'], None),
        (["garbage"], None),
        ([], None),
    ],
)
def test_next_link(values: list[str], target: str | None) -> None:
    assert next_link(values) == target


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}',
            "MANIFEST_UNKNOWN",
            "'manifest unknown'",
        ),
        (b'{"errors":[]}', None, None),
        (b'{"errors":"x"}', None, None),
        (b"[]", None, None),
        (b"<html>", None, None),
        (b"", None, None),
        (b'{"errors":[{"code":5,"message":null}]}', None, None),
    ],
)
def test_distribution_error(body: bytes, code: str | None, message: str | None) -> None:
    assert distribution_error(body) == (code, message)


@pytest.mark.parametrize(
    ("host", "loopback", "internal"),
    [
        ("localhost", True, True),
        ("LOCALHOST.", True, True),
        ("127.0.0.1", True, True),
        ("127.255.0.9", True, True),
        ("::1", True, True),
        ("[::1]", True, True),
        ("10.0.0.1", False, True),
        ("192.168.1.1", False, True),
        ("169.254.169.254", False, True),
        ("0.0.0.0", False, True),
        ("fe80::1", False, True),
        ("8.8.8.8", False, False),
        ("ghcr.io", False, False),
    ],
)
def test_address_classes(host: str, loopback: bool, internal: bool) -> None:
    assert is_loopback_host(host) is loopback
    assert is_internal_host(host) is internal
