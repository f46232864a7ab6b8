"""AuthService in-process: token endpoint, Bearer and Basic checks, audit, hostile cases."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from sqlalchemy import text

from regward.auth.scope import Action
from regward.auth.service import STATIC_RECHECK_INTERVAL, AuthService, HttpResponse
from regward.store.db import Store
from tests.unit.auth.conftest import Clock
from tests.unit.auth.issuer import LocalIssuer, github_claims

DAY = 86400
SERVICE = "regward-test"
REALM = "http://127.0.0.1:5050/token"
DIGEST = "sha256:" + "b" * 64


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


async def get_token(
    service: AuthService,
    username: str | None,
    password: str | None,
    *scopes: str,
    client: str = "10.0.0.1",
    **params: str,
) -> HttpResponse:
    query = urlencode([("service", SERVICE), *[("scope", s) for s in scopes], *params.items()])
    headers = (
        {} if username is None or password is None else {"authorization": basic(username, password)}
    )
    return await service.token_endpoint("GET", query.encode(), headers, b"", client)


async def post_token(
    service: AuthService, form: dict[str, str], client: str = "10.0.0.1"
) -> HttpResponse:
    body = urlencode({"service": SERVICE, **form}).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    return await service.token_endpoint("POST", b"", headers, body, client)


def body(response: HttpResponse) -> dict[str, Any]:
    document = json.loads(response.body)
    assert isinstance(document, dict)
    return document


def header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name.lower()), None)


def unverified_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def bearer(response: HttpResponse) -> str:
    assert response.status == 200, response.body
    return "Bearer " + body(response)["token"]


@pytest.fixture
def service(make_service: Callable[..., AuthService]) -> AuthService:
    return make_service()


@pytest.fixture
def ci_token(oidc_issuer: LocalIssuer, clock: Clock) -> str:
    return oidc_issuer.mint(github_claims(now=clock.now))


def static_token(
    service: AuthService,
    *repositories: str,
    actions: tuple[Action, ...] = (Action.PULL,),
    days: int = 30,
) -> str:
    return service.static_tokens.create(
        repositories=list(repositories),
        actions=list(actions),
        expires_in=days * DAY,
        description="t",
    ).secret


# -- challenges -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/v2/test/app/manifests/v1", ',scope="repository:test/app:pull"'),
        ("HEAD", f"/v2/test/app/blobs/{DIGEST}", ',scope="repository:test/app:pull"'),
        ("PUT", "/v2/test/app/manifests/v1", ',scope="repository:test/app:pull,push"'),
        ("POST", "/v2/test/app/blobs/uploads/", ',scope="repository:test/app:pull,push"'),
        ("DELETE", f"/v2/test/app/manifests/{DIGEST}", ',scope="repository:test/app:delete"'),
        ("GET", "/v2/_catalog", ',scope="registry:catalog:*"'),
        ("GET", "/v2/", ""),
    ],
)
def test_anonymous_gets_challenge(service: AuthService, method: str, path: str, scope: str) -> None:
    result = service.authorize(method, path, None, "10.0.0.1")
    assert result.allowed is False
    assert result.status == 401
    expected = f'Bearer realm="{REALM}",service="{SERVICE}"{scope}'
    assert header(result.headers, "WWW-Authenticate") == expected
    assert body(HttpResponse(401, (), result.body))["errors"][0]["code"] == "UNAUTHORIZED"


def test_mount_challenge_names_both_scopes(service: AuthService) -> None:
    result = service.authorize(
        "POST",
        "/v2/test/app/blobs/uploads/",
        None,
        "a",
        query_string=f"mount={DIGEST}&from=test/base".encode(),
    )
    challenge = header(result.headers, "WWW-Authenticate")
    assert challenge is not None
    assert 'scope="repository:test/app:pull,push repository:test/base:pull"' in challenge


# -- OIDC token flow ------------------------------------------------------------------


async def test_oidc_login_issues_scoped_jwt(
    service: AuthService, ci_token: str, clock: Clock
) -> None:
    response = await get_token(service, "oidc", ci_token, "repository:test/app:pull,push")
    assert response.status == 200
    assert header(response.headers, "Content-Type") == "application/json"
    assert header(response.headers, "Cache-Control") == "no-store"
    document = body(response)
    assert document["token"] == document["access_token"]
    assert document["expires_in"] == 900
    assert document["issued_at"].endswith("Z")
    assert "refresh_token" not in document

    token = document["token"]
    head = jwt.get_unverified_header(token)
    assert head["alg"] == "ES256"
    jwks = json.loads(service.jwks())
    assert head["kid"] in [k["kid"] for k in jwks["keys"]]
    public = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == head["kid"])).key
    claims = jwt.decode(
        token, public, algorithms=["ES256"], audience=SERVICE, options={"verify_iat": False}
    )
    assert claims["iss"] == "regward"
    assert claims["sub"] == "ci:repo:acme/app:ref:refs/heads/main"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] == claims["iat"] == int(clock.now)
    assert len(claims["jti"]) >= 16
    assert claims["access"] == [
        {"type": "repository", "name": "test/app", "actions": ["pull", "push"]}
    ]


async def test_bearer_allows_granted_actions(service: AuthService, ci_token: str) -> None:
    authorization = bearer(
        await get_token(service, "oidc", ci_token, "repository:test/app:pull,push")
    )
    for method, path in [
        ("GET", "/v2/test/app/manifests/v1"),
        ("HEAD", f"/v2/test/app/blobs/{DIGEST}"),
        ("GET", "/v2/test/app/tags/list"),
        ("POST", "/v2/test/app/blobs/uploads/"),
        ("PATCH", "/v2/test/app/blobs/uploads/u-1"),
        ("PUT", "/v2/test/app/manifests/v1"),
        ("GET", "/v2/"),
    ]:
        result = service.authorize(method, path, authorization, "10.0.0.1")
        assert result.allowed, (method, path, result.body)
        assert result.identity == "ci:repo:acme/app:ref:refs/heads/main"


async def test_token_for_a_used_on_b_denied(service: AuthService, ci_token: str) -> None:
    authorization = bearer(
        await get_token(service, "oidc", ci_token, "repository:test/app:pull,push")
    )
    result = service.authorize("GET", "/v2/test/shared/manifests/v1", authorization, "10.0.0.1")
    assert result.status == 403
    error = body(HttpResponse(403, (), result.body))["errors"][0]
    assert error["code"] == "DENIED"
    assert "may not pull test/shared" in error["message"]
    assert result.repository == "test/shared"
    assert result.action == "pull"


async def test_delete_not_granted(service: AuthService, ci_token: str) -> None:
    authorization = bearer(await get_token(service, "oidc", ci_token, "repository:test/app:*"))
    result = service.authorize("DELETE", f"/v2/test/app/manifests/{DIGEST}", authorization, "a")
    assert result.status == 403


async def test_partial_grant(service: AuthService, ci_token: str) -> None:
    response = await get_token(
        service,
        "oidc",
        ci_token,
        "repository:test/shared:pull,push repository:other/app:pull",
        "repository:test/app:delete,pull",
        "registry:catalog:*",
    )
    assert response.status == 200
    access = unverified_claims(body(response)["token"])["access"]
    assert access == [
        {"type": "repository", "name": "test/shared", "actions": ["pull"]},
        {"type": "repository", "name": "test/app", "actions": ["pull"]},
    ]


async def test_login_without_scope(service: AuthService, ci_token: str) -> None:
    response = await get_token(service, "oidc", ci_token)
    assert response.status == 200
    assert unverified_claims(body(response)["token"])["access"] == []


async def test_ungranted_ci_identity_cannot_log_in(
    service: AuthService, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    token = oidc_issuer.mint(github_claims(now=clock.now, repository="evil/app"))
    response = await get_token(service, "oidc", token, "repository:test/app:push")
    assert response.status == 401
    assert "matches no grant" in body(response)["errors"][0]["message"]


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda i, now: i.mint(github_claims(now=now - 3600)), "expired"),
        (lambda i, now: i.mint(github_claims(now=now, audience="other")), "audience"),
        (
            lambda i, now: i.mint(github_claims(now=now, issuer="https://evil.example")),
            "no trust policy",
        ),
        (lambda i, now: i.forge_alg_none(github_claims(now=now)), "'none' is not accepted"),
        (
            lambda i, now: i.forge_hs256_with_public_key(github_claims(now=now)),
            "'HS256' is not accepted",
        ),
        (lambda i, now: i.mint(github_claims(now=now), kid="unknown"), "unknown signing key id"),
    ],
)
async def test_hostile_oidc_tokens_rejected(
    service: AuthService,
    oidc_issuer: LocalIssuer,
    clock: Clock,
    make_token: Callable[[LocalIssuer, float], str],
    message: str,
) -> None:
    response = await get_token(
        service, "oidc", make_token(oidc_issuer, clock.now), "repository:test/app:pull"
    )
    assert response.status == 401
    assert message in body(response)["errors"][0]["message"]
    direct = service.authorize(
        "GET", "/v2/test/app/manifests/v1", basic("oidc", make_token(oidc_issuer, clock.now)), "b"
    )
    assert direct.status == 401


async def test_oidc_token_gets_configured_lifetime(
    service: AuthService, oidc_issuer: LocalIssuer, clock: Clock
) -> None:
    short = oidc_issuer.mint(github_claims(now=clock.now, lifetime=120))
    document = body(await get_token(service, "oidc", short))
    assert document["expires_in"] == 900


async def test_minimum_lifetime_60s(make_service: Callable[..., AuthService], clock: Clock) -> None:
    service = make_service()
    secret = static_token(service, "test/app", days=1)
    clock.advance(DAY - 20)
    assert body(await get_token(service, "ci", secret))["expires_in"] == 60


async def test_expired_access_token_rejected(
    service: AuthService, ci_token: str, clock: Clock
) -> None:
    authorization = bearer(await get_token(service, "oidc", ci_token, "repository:test/app:pull"))
    clock.advance(900 + 61)
    result = service.authorize("GET", "/v2/test/app/manifests/v1", authorization, "a")
    assert result.status == 401
    assert 'error="invalid_token"' in (header(result.headers, "WWW-Authenticate") or "")


async def test_tampered_access_token_rejected(service: AuthService, ci_token: str) -> None:
    token = body(await get_token(service, "oidc", ci_token, "repository:test/app:pull"))["token"]
    head, payload, signature = token.split(".")
    claims = unverified_claims(token)
    claims["access"][0]["name"] = "test/other"
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"Bearer {head}.{forged_payload}.{signature}"
    assert service.authorize("GET", "/v2/test/other/manifests/v1", forged, "a").status == 401


async def test_token_for_other_service_rejected(
    make_service: Callable[..., AuthService], ci_token: str
) -> None:
    other = make_service(service="elsewhere")
    authorization = bearer(
        await other.token_endpoint(
            "GET",
            b"service=elsewhere&scope=repository:test/app:pull",
            {"Authorization": basic("oidc", ci_token)},
            b"",
            "a",
        )
    )
    service = make_service()
    result = service.authorize("GET", "/v2/test/app/manifests/v1", authorization, "a")
    assert result.status == 401
    assert "another service" in body(HttpResponse(401, (), result.body))["errors"][0]["message"]


async def test_jwt_replayed_after_policy_removed(
    make_service: Callable[..., AuthService], ci_token: str
) -> None:
    before = make_service()
    authorization = bearer(await get_token(before, "oidc", ci_token, "repository:test/app:pull"))
    refresh = body(
        await post_token(
            before,
            {
                "grant_type": "password",
                "username": "oidc",
                "password": ci_token,
                "access_type": "offline",
            },
        )
    )["refresh_token"]

    after = make_service(oidc=[])
    login = await get_token(after, "oidc", ci_token, "repository:test/app:pull")
    assert login.status == 401
    assert "no trust policy for issuer" in body(login)["errors"][0]["message"]
    reuse = after.authorize("GET", "/v2/test/app/manifests/v1", authorization, "a")
    assert reuse.status == 401
    assert (
        "trust policy ci no longer exists"
        in body(HttpResponse(401, (), reuse.body))["errors"][0]["message"]
    )
    refreshed = await post_token(after, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert refreshed.status == 401
    assert body(refreshed)["error"] == "invalid_grant"


# -- OAuth2 POST --------------------------------------------------------------------


async def test_oauth_password_and_refresh(
    service: AuthService, ci_token: str, clock: Clock
) -> None:
    response = await post_token(
        service,
        {
            "grant_type": "password",
            "username": "oidc",
            "password": ci_token,
            "scope": "repository:test/app:pull,push repository:nope/x:pull",
            "access_type": "offline",
            "client_id": "docker",
        },
    )
    document = body(response)
    assert response.status == 200
    assert document["scope"] == "repository:test/app:pull,push"
    assert document["token_type"] == "Bearer"
    refresh = document["refresh_token"]
    assert jwt.get_unverified_header(refresh)["typ"] == "rgw-refresh+jwt"

    # A refresh token is not an access token.
    as_bearer = service.authorize("GET", "/v2/test/app/manifests/v1", f"Bearer {refresh}", "a")
    assert as_bearer.status == 401

    clock.advance(60)
    again = await post_token(
        service,
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "scope": "repository:test/app:pull",
        },
    )
    assert again.status == 200, again.body
    assert "refresh_token" not in body(again)
    assert unverified_claims(body(again)["access_token"])["access"] == [
        {"type": "repository", "name": "test/app", "actions": ["pull"]}
    ]
    # The refresh token lives no longer than the CI token it came from.
    assert unverified_claims(refresh)["exp"] <= unverified_claims(ci_token)["exp"]


async def test_access_token_is_not_a_refresh_token(service: AuthService, ci_token: str) -> None:
    access = body(await get_token(service, "oidc", ci_token))["token"]
    response = await post_token(service, {"grant_type": "refresh_token", "refresh_token": access})
    assert response.status == 401


async def test_oauth_bad_requests(service: AuthService) -> None:
    unsupported = await post_token(service, {"grant_type": "client_credentials"})
    assert unsupported.status == 400
    assert body(unsupported)["error"] == "unsupported_grant_type"
    missing = await post_token(service, {"grant_type": "password", "username": "oidc"})
    assert missing.status == 401


async def test_token_endpoint_bad_requests(service: AuthService, ci_token: str) -> None:
    wrong_service = await service.token_endpoint(
        "GET", b"service=other", {"Authorization": basic("oidc", ci_token)}, b"", "a"
    )
    assert wrong_service.status == 400
    anonymous = await get_token(service, None, None, "repository:test/app:pull")
    assert anonymous.status == 401
    assert header(anonymous.headers, "WWW-Authenticate") == f'Basic realm="{REALM}"'
    method = await service.token_endpoint("PUT", b"", {}, b"", "a")
    assert method.status == 405
    unknown = await get_token(service, "alice", "hunter2", "repository:test/app:pull")
    assert unknown.status == 401


# -- static tokens ------------------------------------------------------------------


async def test_pull_token_cannot_push(service: AuthService) -> None:
    secret = static_token(service, "test/app")
    response = await get_token(service, "ci", secret, "repository:test/app:pull,push")
    access = unverified_claims(body(response)["token"])["access"]
    assert access == [{"type": "repository", "name": "test/app", "actions": ["pull"]}]
    authorization = bearer(response)
    assert service.authorize("GET", "/v2/test/app/manifests/v1", authorization, "a").allowed
    assert service.authorize("PUT", "/v2/test/app/manifests/v1", authorization, "a").status == 403
    assert (
        service.authorize("POST", "/v2/test/app/blobs/uploads/", authorization, "a").status == 403
    )
    assert service.authorize("GET", "/v2/test/other/manifests/v1", authorization, "a").status == 403


async def test_static_token_basic_on_v2(service: AuthService) -> None:
    secret = static_token(service, "test/app")
    authorization = basic("anything", secret)
    token_id = secret.split("_")[1]
    allowed = service.authorize("GET", "/v2/test/app/manifests/v1", authorization, "a")
    assert allowed.allowed
    assert allowed.identity == f"token:{token_id}"
    assert service.authorize("PUT", "/v2/test/app/manifests/v1", authorization, "a").status == 403
    assert service.authorize("GET", "/v2/test/b/manifests/v1", authorization, "a").status == 403
    assert service.authorize("GET", "/v2/", authorization, "a").allowed


async def test_revoked_static_token(service: AuthService, clock: Clock) -> None:
    secret = static_token(service, "test/app")
    authorization = bearer(await get_token(service, "ci", secret, "repository:test/app:pull"))
    assert service.authorize("GET", "/v2/test/app/manifests/v1", authorization, "a").allowed
    service.static_tokens.revoke(secret.split("_")[1])

    login = await get_token(service, "ci", secret, "repository:test/app:pull")
    assert login.status == 401
    assert "is revoked" in body(login)["errors"][0]["message"]
    assert (
        service.authorize("GET", "/v2/test/app/manifests/v1", basic("ci", secret), "a").status
        == 401
    )
    clock.advance(STATIC_RECHECK_INTERVAL)
    result = service.authorize("GET", "/v2/test/app/manifests/v1", authorization, "a")
    assert result.status == 401
    assert "revoked or expired" in body(HttpResponse(401, (), result.body))["errors"][0]["message"]


async def test_expired_static_token(service: AuthService, clock: Clock) -> None:
    secret = static_token(service, "test/app", days=1)
    clock.advance(DAY)
    login = await get_token(service, "ci", secret, "repository:test/app:pull")
    assert login.status == 401
    assert "is expired" in body(login)["errors"][0]["message"]


async def test_static_token_lifetime_capped_by_expiry(service: AuthService, clock: Clock) -> None:
    secret = static_token(service, "test/app", days=1)
    clock.advance(DAY - 300)
    assert (
        body(await get_token(service, "ci", secret, "repository:test/app:pull"))["expires_in"]
        == 300
    )


async def test_static_refresh_stops_after_revoke(service: AuthService) -> None:
    secret = static_token(service, "test/app")
    document = body(
        await post_token(
            service,
            {
                "grant_type": "password",
                "username": "ci",
                "password": secret,
                "access_type": "offline",
            },
        )
    )
    refresh = document["refresh_token"]
    assert (
        await post_token(service, {"grant_type": "refresh_token", "refresh_token": refresh})
    ).status == 200
    service.static_tokens.revoke(secret.split("_")[1])
    assert (
        await post_token(service, {"grant_type": "refresh_token", "refresh_token": refresh})
    ).status == 401


async def test_push_requires_oidc_on_protected(
    make_service: Callable[..., AuthService], ci_token: str
) -> None:
    service = make_service(
        pushRequiresOidc=True, protected=lambda repository: repository == "test/app"
    )
    secret = static_token(service, "test/app", "test/scratch", actions=(Action.PULL, Action.PUSH))
    response = await get_token(
        service, "ci", secret, "repository:test/app:pull,push", "repository:test/scratch:pull,push"
    )
    assert unverified_claims(body(response)["token"])["access"] == [
        {"type": "repository", "name": "test/app", "actions": ["pull"]},
        {"type": "repository", "name": "test/scratch", "actions": ["pull", "push"]},
    ]
    assert (
        service.authorize("PUT", "/v2/test/app/manifests/v1", basic("ci", secret), "a").status
        == 403
    )
    oidc = await get_token(service, "oidc", ci_token, "repository:test/app:pull,push")
    assert unverified_claims(body(oidc)["token"])["access"][0]["actions"] == ["pull", "push"]


async def test_catalog_needs_pull_on_everything(service: AuthService) -> None:
    narrow = static_token(service, "test/app")
    wide = static_token(service, "**")
    narrow_token = await get_token(service, "ci", narrow, "registry:catalog:*")
    assert unverified_claims(body(narrow_token)["token"])["access"] == []
    assert service.authorize("GET", "/v2/_catalog", bearer(narrow_token), "a").status == 403
    wide_token = await get_token(service, "ci", wide, "registry:catalog:*")
    assert service.authorize("GET", "/v2/_catalog", bearer(wide_token), "a").allowed
    assert service.authorize("GET", "/v2/_catalog", basic("ci", wide), "a").allowed


async def test_mount_needs_pull_on_source(service: AuthService) -> None:
    secret = static_token(service, "test/app", actions=(Action.PULL, Action.PUSH))
    query = f"mount={DIGEST}&from=test/secret".encode()
    result = service.authorize(
        "POST", "/v2/test/app/blobs/uploads/", basic("ci", secret), "a", query_string=query
    )
    assert result.status == 403
    assert "may not pull test/secret" in result.body.decode()
    both = static_token(service, "test/*", actions=(Action.PULL, Action.PUSH))
    allowed = service.authorize(
        "POST", "/v2/test/app/blobs/uploads/", basic("ci", both), "a", query_string=query
    )
    assert allowed.allowed


async def test_unknown_path_after_auth(service: AuthService) -> None:
    secret = static_token(service, "test/app")
    assert service.authorize("GET", "/v2/Bad/manifests/x", basic("ci", secret), "a").status == 404
    assert service.authorize("GET", "/v2/Bad/manifests/x", None, "a").status == 401


# -- brute force --------------------------------------------------------------------


async def test_brute_force_rate_limited(service: AuthService, ci_token: str) -> None:
    secret = static_token(service, "test/app")
    guess = "rgw_" + secret.split("_")[1] + "_" + "0" * 64
    for _ in range(10):
        assert (await get_token(service, "ci", guess, client="192.0.2.9")).status == 401
    limited = await get_token(service, "ci", guess, client="192.0.2.9")
    assert limited.status == 429
    assert int(header(limited.headers, "Retry-After") or "0") > 0
    # Even the right secret waits, from that address only.
    assert (await get_token(service, "ci", secret, client="192.0.2.9")).status == 429
    assert (await get_token(service, "ci", secret, client="192.0.2.10")).status == 200
    direct = service.authorize("GET", "/v2/test/app/manifests/v1", basic("ci", secret), "192.0.2.9")
    assert direct.status == 429


async def test_basic_brute_force_on_v2_limited(service: AuthService) -> None:
    for _ in range(10):
        result = service.authorize("GET", "/v2/", basic("x", "rgw_guess"), "198.51.100.1")
        assert result.status == 401
    assert service.authorize("GET", "/v2/", basic("x", "rgw_guess"), "198.51.100.1").status == 429


async def test_rate_limit_refills(service: AuthService, clock: Clock) -> None:
    for _ in range(10):
        await get_token(service, "ci", "rgw_wrong", client="203.0.113.5")
    assert (await get_token(service, "ci", "rgw_wrong", client="203.0.113.5")).status == 429
    clock.advance(6)
    assert (await get_token(service, "ci", "rgw_wrong", client="203.0.113.5")).status == 401


# -- audit ----------------------------------------------------------------------------


async def test_audit_names_identity_never_secret(
    service: AuthService, store: Store, ci_token: str
) -> None:
    secret = static_token(service, "test/app")
    issued = await get_token(service, "oidc", ci_token, "repository:test/app:pull,push")
    static_issued = await get_token(service, "ci", secret, "repository:test/app:pull,push")
    await get_token(service, "ci", secret[:-1] + "x", "repository:test/app:pull")
    service.authorize("PUT", "/v2/test/app/manifests/v1", bearer(static_issued), "10.0.0.1")

    records = store.list_audit(limit=100)
    identities = {r.identity for r in records}
    token_id = secret.split("_")[1]
    assert "ci:repo:acme/app:ref:refs/heads/main" in identities
    assert f"token:{token_id}" in identities
    rules = {(r.rule, str(r.decision), str(r.action), r.identity) for r in records}
    assert ("auth.token", "allow", "push", "ci:repo:acme/app:ref:refs/heads/main") in rules
    assert ("auth.token", "deny", "push", f"token:{token_id}") in rules
    assert ("auth.login", "deny", "pull", None) in rules
    assert ("auth.access", "deny", "push", f"token:{token_id}") in rules

    with store.engine.connect() as connection:
        dump = repr(connection.execute(text("SELECT * FROM audit_log")).all())
    for value in (
        secret,
        secret.split("_")[2],
        ci_token,
        body(issued)["token"],
        body(static_issued)["token"],
    ):
        assert value not in dump
    assert ci_token.split(".")[2] not in dump


async def test_logs_never_contain_secrets(
    service: AuthService, ci_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="regward")
    secret = static_token(service, "test/app")
    issued = body(await get_token(service, "oidc", ci_token, "repository:test/app:pull"))["token"]
    await get_token(service, "ci", secret, "repository:test/app:pull")
    await get_token(service, "ci", secret[:-1] + "0", "repository:test/app:pull")
    service.authorize("GET", "/v2/test/app/manifests/v1", f"Bearer {issued}", "a")
    service.authorize("GET", "/v2/x/manifests/v1", basic("ci", secret), "a")
    text_logged = caplog.text
    assert "issued token to ci:repo:acme/app" in text_logged
    for value in (secret.split("_")[2], ci_token.split(".")[2], issued.split(".")[2]):
        assert value not in text_logged


def test_jwks_published(service: AuthService) -> None:
    kid = service.signing_key_id()
    document = json.loads(service.jwks())
    assert [k["kid"] for k in document["keys"]] == [kid]
    assert all("d" not in k for k in document["keys"])


async def test_get_offline_token_returns_refresh(service: AuthService, ci_token: str) -> None:
    online = await get_token(service, "oidc", ci_token, "repository:test/app:pull")
    assert "refresh_token" not in body(online)
    offline = await get_token(
        service, "oidc", ci_token, "repository:test/app:pull", offline_token="true"
    )
    refresh = body(offline)["refresh_token"]
    response = await post_token(service, {"grant_type": "refresh_token", "refresh_token": refresh})
    assert response.status == 200
