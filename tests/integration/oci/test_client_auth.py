"""RegistryClient authentication against a real docker-registry: Basic and the token flow.

The token flow runs for real: docker-registry is configured with `auth: token:` and verifies
JWTs signed by a small issuer on 127.0.0.1, whose certificate is the registry's
rootcertbundle (distribution 2.8 accepts an `x5c` header that chains to that bundle).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import http.server
import json
import shutil
import threading
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from regward.oci.client import Credentials, RegistryClient
from regward.oci.errors import AuthenticationError
from regward.oci.mediatypes import OCI_MANIFEST
from tests.support.images import PushedImage, push_image
from tests.support.registry import RunningRegistry, run_registry

pytestmark = pytest.mark.registry

USERNAME = "regward"
PASSWORD = "regward-test-password"
# bcrypt (cost 4) of PASSWORD, made once with Python's crypt module on glibc, because
# distribution's htpasswd support accepts only bcrypt entries.
HTPASSWD = f"{USERNAME}:$2b$04$kp7OUyi.ZdoL/aDmwpGeMOQaPghoYrpA/k426j/HzeoqFdm/Ek/f.\n"
SERVICE = "regward-test"
ISSUER = "regward-test-issuer"


@pytest.fixture(scope="module")
def seeded_storage(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PushedImage]:
    """A registry storage directory holding test/app:v1, written without auth."""
    workdir = tmp_path_factory.mktemp("seed")
    with run_registry(workdir) as registry:
        image = push_image(registry.url, "test/app", "v1", {"auth.txt": b"auth"})
    return workdir / "storage", image


def copy_storage(seed: Path, workdir: Path) -> None:
    shutil.copytree(seed, workdir / "storage")


# Basic auth.


@pytest.fixture(scope="module")
def basic_registry(
    tmp_path_factory: pytest.TempPathFactory, seeded_storage: tuple[Path, PushedImage]
) -> Iterator[RunningRegistry]:
    workdir = tmp_path_factory.mktemp("basic")
    copy_storage(seeded_storage[0], workdir)
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(HTPASSWD)
    with run_registry(workdir, htpasswd=htpasswd) as registry:
        yield registry


async def test_basic_auth_fetches_manifest(
    basic_registry: RunningRegistry, seeded_storage: tuple[Path, PushedImage]
) -> None:
    statuses: list[int] = []

    async def on_end(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        statuses.append(params.response.status)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    credentials = Credentials(USERNAME, PASSWORD)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = RegistryClient.for_registry(
            basic_registry.host, credentials=credentials, session=session
        )
        fetched = await client.get_manifest("test/app", "v1")
        blob = await client.get_blob("test/app", seeded_storage[1].config_digest)
    assert fetched.digest == seeded_storage[1].digest
    assert blob
    # One challenge, then Basic is sent up front.
    assert statuses == [401, 200, 200]


async def test_basic_auth_without_credentials(basic_registry: RunningRegistry) -> None:
    async with RegistryClient.for_registry(basic_registry.host) as client:
        with pytest.raises(AuthenticationError, match="requires credentials") as caught:
            await client.get_manifest("test/app", "v1")
    assert caught.value.status_code == 401


async def test_basic_auth_wrong_password(basic_registry: RunningRegistry) -> None:
    credentials = Credentials(USERNAME, "wrong-password")
    async with RegistryClient.for_registry(basic_registry.host, credentials=credentials) as client:
        with pytest.raises(AuthenticationError, match="rejected the Basic credentials") as caught:
            await client.get_manifest("test/app", "v1")
    assert "wrong-password" not in str(caught.value)


# The Docker token flow.


@dataclass
class TokenIssuer:
    """A token service that signs distribution JWTs with a key its certificate vouches for."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    url: str = ""
    requests: list[dict[str, object]] = field(default_factory=list)
    token_field: str = "token"
    expires_in: int | None = 300
    grant: bool = True
    """Whether to grant the requested actions (False issues a token with no access)."""

    def issue(self, query: dict[str, list[str]], authorization: str | None) -> tuple[int, bytes]:
        user = ""
        if authorization is not None:
            user, _, password = base64.b64decode(authorization.split()[1]).decode().partition(":")
            if (user, password) != (USERNAME, PASSWORD):
                return 401, b'{"details": "invalid credentials"}'

        scopes = query.get("scope", [])
        self.requests.append(
            {"service": query.get("service", [None])[0], "scopes": scopes, "user": user}
        )

        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            if self.grant:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user,
            "aud": SERVICE,
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now,
            "jti": str(uuid.uuid4()),
            "access": access,
        }

        chain = [base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER))]
        token = jwt.encode(
            claims, self.key, algorithm="ES256", headers={"x5c": [c.decode() for c in chain]}
        )
        body: dict[str, object] = {self.token_field: token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return 200, json.dumps(body).encode()


def make_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "regward test token issuer")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def issuer() -> Iterator[TokenIssuer]:
    key = ec.generate_private_key(ec.SECP256R1())
    state = TokenIssuer(key, make_certificate(key))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            status, body = state.issue(
                urllib.parse.parse_qs(parsed.query), self.headers.get("Authorization")
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/token"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def token_issuer(issuer: TokenIssuer) -> TokenIssuer:
    """The module's issuer, with its record and behaviour reset for one test."""
    issuer.requests.clear()
    issuer.token_field = "token"
    issuer.expires_in = 300
    issuer.grant = True
    return issuer


@pytest.fixture(scope="module")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
    seeded_storage: tuple[Path, PushedImage],
    issuer: TokenIssuer,
) -> Iterator[RunningRegistry]:
    workdir = tmp_path_factory.mktemp("token")
    copy_storage(seeded_storage[0], workdir)
    bundle = workdir / "issuer.pem"
    bundle.write_bytes(issuer.certificate.public_bytes(serialization.Encoding.PEM))
    config = (
        "auth:\n"
        "  token:\n"
        f"    realm: {issuer.url}\n"
        f"    service: {SERVICE}\n"
        f"    issuer: {ISSUER}\n"
        f"    rootcertbundle: {bundle}\n"
    )
    with run_registry(workdir, extra_config=config) as registry:
        yield registry


@pytest.fixture
async def token_client(token_registry: RunningRegistry) -> AsyncIterator[RegistryClient]:
    async with RegistryClient.for_registry(token_registry.host) as client:
        yield client


async def test_token_flow_anonymous_pull(
    token_client: RegistryClient,
    token_issuer: TokenIssuer,
    seeded_storage: tuple[Path, PushedImage],
) -> None:
    fetched = await token_client.get_manifest("test/app", "v1")
    assert fetched.digest == seeded_storage[1].digest
    assert token_issuer.requests == [
        {"service": SERVICE, "scopes": ["repository:test/app:pull"], "user": ""}
    ]


async def test_token_is_cached_per_scope(
    token_client: RegistryClient,
    token_issuer: TokenIssuer,
    seeded_storage: tuple[Path, PushedImage],
) -> None:
    await token_client.get_manifest("test/app", "v1")
    await token_client.get_blob("test/app", seeded_storage[1].config_digest)
    assert await token_client.head_manifest("test/app", "v1") is not None
    assert len(token_issuer.requests) == 1


async def test_token_flow_sends_credentials_to_realm(
    token_registry: RunningRegistry, token_issuer: TokenIssuer
) -> None:
    credentials = Credentials(USERNAME, PASSWORD)
    async with RegistryClient.for_registry(token_registry.host, credentials=credentials) as client:
        await client.get_manifest("test/app", "v1")
    assert token_issuer.requests[0]["user"] == USERNAME


async def test_token_flow_wrong_password(
    token_registry: RunningRegistry, token_issuer: TokenIssuer
) -> None:
    credentials = Credentials(USERNAME, "wrong-password")
    async with RegistryClient.for_registry(token_registry.host, credentials=credentials) as client:
        with pytest.raises(AuthenticationError, match="rejected the request") as caught:
            await client.get_manifest("test/app", "v1")
    assert caught.value.status_code == 401
    assert "wrong-password" not in str(caught.value)


async def test_token_without_access_is_rejected(
    token_client: RegistryClient, token_issuer: TokenIssuer
) -> None:
    token_issuer.grant = False
    with pytest.raises(AuthenticationError, match="after authenticating"):
        await token_client.get_manifest("test/app", "v1")


async def test_access_token_field_and_expiry(
    token_client: RegistryClient, token_issuer: TokenIssuer
) -> None:
    token_issuer.token_field = "access_token"
    token_issuer.expires_in = 1
    await token_client.get_manifest("test/app", "v1")
    await token_client.get_manifest("test/app", "v1")
    assert len(token_issuer.requests) == 1
    # A 1 s token is used for half its lifetime, then fetched again.
    await asyncio.sleep(0.6)
    await token_client.get_manifest("test/app", "v1")
    assert len(token_issuer.requests) == 2


async def test_rejected_cached_token_is_replaced(
    token_client: RegistryClient, token_issuer: TokenIssuer
) -> None:
    token_client._tokens.put("repository:test/app:pull", "not-a-valid-token", 300)
    fetched = await token_client.get_manifest("test/app", "v1")
    assert fetched.media_type == OCI_MANIFEST
    assert len(token_issuer.requests) == 1
    assert token_client._tokens.get("repository:test/app:pull") != "not-a-valid-token"


async def test_push_through_request_asks_for_push_scope(
    token_client: RegistryClient,
    token_issuer: TokenIssuer,
    seeded_storage: tuple[Path, PushedImage],
) -> None:
    response = await token_client.request(
        "PUT",
        "/v2/test/app/manifests/pushed-with-token",
        headers={"Content-Type": OCI_MANIFEST},
        data=seeded_storage[1].manifest,
    )
    try:
        assert response.status == 201
    finally:
        response.release()
    # The client asks for the scope of the registry's challenge; distribution 2.8 lists the
    # actions as "push,pull".
    (scope,) = token_issuer.requests[-1]["scopes"]  # type: ignore[misc]
    kind, name, actions = scope.split(":")
    assert (kind, name, sorted(actions.split(","))) == ("repository", "test/app", ["pull", "push"])


async def test_streamed_push_authenticates_first(
    token_client: RegistryClient,
    token_issuer: TokenIssuer,
    seeded_storage: tuple[Path, PushedImage],
) -> None:
    manifest = seeded_storage[1].manifest

    async def body() -> AsyncIterator[bytes]:
        yield manifest

    response = await token_client.request(
        "PUT",
        "/v2/test/app/manifests/streamed-with-token",
        headers={"Content-Type": OCI_MANIFEST},
        data=body(),
    )
    try:
        assert response.status == 201
    finally:
        response.release()
    assert token_issuer.requests[-1]["scopes"] == ["repository:test/app:pull,push"]


async def test_concurrent_requests_share_one_token(
    token_client: RegistryClient, token_issuer: TokenIssuer
) -> None:
    await asyncio.gather(*(token_client.get_manifest("test/app", "v1") for _ in range(5)))
    assert len(token_issuer.requests) == 1
