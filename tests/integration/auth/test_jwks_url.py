"""Issuer keys from a `jwksUrl` served by the test on 127.0.0.1: caching and hostile servers."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from regward.auth import oidc
from regward.auth.config import load_auth_settings
from regward.auth.errors import JwksFetchError, OidcVerificationError
from regward.auth.oidc import MAX_JWKS_BYTES, MIN_REFETCH_INTERVAL, OidcVerifier
from regward.auth.service import AuthService
from regward.store.db import Store
from tests.unit.auth.conftest import Clock
from tests.unit.auth.issuer import AUDIENCE, LocalIssuer, github_claims


@dataclass
class JwksServer:
    """A loopback HTTP server whose `/jwks` response the test changes at will."""

    document: dict[str, Any]
    mode: str = "ok"
    """`ok`, `big`, `redirect`, `missing`, `slow` or `garbage`."""
    requests: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def jwks_server(oidc_issuer: LocalIssuer) -> Iterator[JwksServer]:
    state = JwksServer(document=oidc_issuer.public_jwks())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
            state.requests.append(self.path)
            if state.mode == "redirect":
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.end_headers()
                return
            if state.mode == "missing":
                self.send_response(404)
                self.end_headers()
                return
            if state.mode == "slow":
                time.sleep(1.5)
            if state.mode == "big":
                payload = b'{"keys": [' + b" " * (MAX_JWKS_BYTES + 10) + b"]}"
            elif state.mode == "garbage":
                payload = b"<html>not json</html>"
            else:
                payload = json.dumps(state.document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _section(issuer: LocalIssuer, url: str) -> dict[str, Any]:
    return {
        "enabled": True,
        "service": "regward-test",
        "oidc": [
            {
                "name": "gha",
                "issuer": issuer.issuer,
                "audience": AUDIENCE,
                "jwksUrl": url,
                "jwksCacheLifetime": "10m",
                "grants": [
                    {
                        "claims": {"repository": "acme/app"},
                        "repositories": ["test/app"],
                        "actions": ["pull"],
                    }
                ],
            }
        ],
    }


def _verifier(tmp_path: Path, issuer: LocalIssuer, url: str, clock: Clock) -> OidcVerifier:
    settings = load_auth_settings(_section(issuer, url), tmp_path)
    return OidcVerifier(settings.oidc, skew=settings.clock_skew, clock=clock)


def test_keys_cached_for_lifetime(
    tmp_path: Path, oidc_issuer: LocalIssuer, jwks_server: JwksServer, clock: Clock
) -> None:
    verifier = _verifier(tmp_path, oidc_issuer, jwks_server.url, clock)
    for _ in range(3):
        assert verifier.verify(oidc_issuer.mint(github_claims(now=clock.now))).name.startswith(
            "gha:"
        )
    assert len(jwks_server.requests) == 1
    clock.advance(600)
    verifier.verify(oidc_issuer.mint(github_claims(now=clock.now)))
    assert len(jwks_server.requests) == 2


def test_unknown_kid_refetches_once(
    tmp_path: Path, oidc_issuer: LocalIssuer, jwks_server: JwksServer, clock: Clock
) -> None:
    verifier = _verifier(tmp_path, oidc_issuer, jwks_server.url, clock)
    verifier.verify(oidc_issuer.mint(github_claims(now=clock.now)))
    clock.advance(MIN_REFETCH_INTERVAL)
    for _ in range(5):
        with pytest.raises(OidcVerificationError, match="unknown signing key id 'new'"):
            verifier.verify(oidc_issuer.mint(github_claims(now=clock.now), kid="new"))
    assert len(jwks_server.requests) == 2


def test_issuer_rotation_picked_up(
    tmp_path: Path, oidc_issuer: LocalIssuer, jwks_server: JwksServer, clock: Clock
) -> None:
    verifier = _verifier(tmp_path, oidc_issuer, jwks_server.url, clock)
    verifier.verify(oidc_issuer.mint(github_claims(now=clock.now)))
    for key in jwks_server.document["keys"]:
        key["kid"] += "-next"
    clock.advance(MIN_REFETCH_INTERVAL)
    token = oidc_issuer.mint(github_claims(now=clock.now), kid="rsa-1-next")
    assert verifier.verify(token).name.startswith("gha:")
    assert len(jwks_server.requests) == 2


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("big", f"larger than {MAX_JWKS_BYTES} bytes"),
        ("redirect", "HTTP 302"),
        ("missing", "HTTP 404"),
        ("garbage", "is not JSON"),
    ],
)
def test_hostile_jwks_server(
    tmp_path: Path,
    oidc_issuer: LocalIssuer,
    jwks_server: JwksServer,
    clock: Clock,
    mode: str,
    message: str,
) -> None:
    jwks_server.mode = mode
    verifier = _verifier(tmp_path, oidc_issuer, jwks_server.url, clock)
    with pytest.raises(JwksFetchError, match=message):
        verifier.verify(oidc_issuer.mint(github_claims(now=clock.now)))
    assert all(path == "/jwks" for path in jwks_server.requests)


def test_timeout(
    tmp_path: Path,
    oidc_issuer: LocalIssuer,
    jwks_server: JwksServer,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(oidc, "JWKS_TIMEOUT", 0.3)
    jwks_server.mode = "slow"
    verifier = _verifier(tmp_path, oidc_issuer, jwks_server.url, clock)
    started = time.monotonic()
    with pytest.raises(JwksFetchError, match="fetching JWKS .* failed"):
        verifier.verify(oidc_issuer.mint(github_claims(now=clock.now)))
    assert time.monotonic() - started < 1.4


def test_failures_back_off(
    tmp_path: Path, oidc_issuer: LocalIssuer, jwks_server: JwksServer, clock: Clock
) -> None:
    jwks_server.mode = "missing"
    verifier = _verifier(tmp_path, oidc_issuer, jwks_server.url, clock)
    for _ in range(4):
        with pytest.raises(JwksFetchError):
            verifier.verify(oidc_issuer.mint(github_claims(now=clock.now)))
    assert len(jwks_server.requests) == 1
    jwks_server.mode = "ok"
    clock.advance(MIN_REFETCH_INTERVAL)
    assert verifier.verify(oidc_issuer.mint(github_claims(now=clock.now)))
    assert len(jwks_server.requests) == 2


async def test_unreachable_issuer_is_503_not_a_failed_login(
    tmp_path: Path, oidc_issuer: LocalIssuer, jwks_server: JwksServer, clock: Clock
) -> None:
    jwks_server.mode = "missing"
    settings = load_auth_settings(_section(oidc_issuer, jwks_server.url), tmp_path)
    with Store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        store.migrate()
        service = AuthService(settings, store, realm="http://127.0.0.1:1/token", clock=clock)
        credentials = base64.b64encode(
            f"oidc:{oidc_issuer.mint(github_claims(now=clock.now))}".encode()
        ).decode()
        for _ in range(15):
            response = await service.token_endpoint(
                "GET", b"", {"Authorization": f"Basic {credentials}"}, b"", "10.0.0.1"
            )
            assert response.status == 503
