"""Static tokens on SQLite: create, verify, list, revoke, rotate with overlap, expiry caps."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from regward.auth.errors import AuthenticationError, TokenStoreError
from regward.auth.scope import Action
from regward.auth.static import StaticTokenStore, parse_token
from regward.store.db import Store
from tests.unit.auth.conftest import Clock

DAY = 86400


@pytest.fixture
def tokens(store: Store, clock: Clock) -> StaticTokenStore:
    return StaticTokenStore(store.engine, max_lifetime=90 * DAY, rotation_overlap=3600, clock=clock)


def _create(
    tokens: StaticTokenStore, *, actions: tuple[Action, ...] = (Action.PULL,), days: int = 30
) -> str:
    return tokens.create(
        repositories=["test/app"],
        actions=list(actions),
        expires_in=days * DAY,
        description="prod pull",
    ).secret


def test_create_prints_prefixed_secret(tokens: StaticTokenStore) -> None:
    issued = tokens.create(
        repositories=["test/app", "test/app", "test/other"],
        actions=[Action.PUSH, Action.PULL],
        expires_in=30 * DAY,
        description="ci",
    )
    assert re.fullmatch(r"rgw_[0-9a-f]{12}_[0-9a-f]{64}", issued.secret)
    assert parse_token(issued.secret) == (issued.token.id, issued.secret.split("_")[2])
    assert issued.token.repositories == ("test/app", "test/other")
    assert issued.token.actions == (Action.PULL, Action.PUSH)


def test_only_hash_stored(tokens: StaticTokenStore, store: Store) -> None:
    secret = _create(tokens)
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT * FROM static_tokens")).all()
    dumped = repr(rows)
    assert secret not in dumped
    assert secret.split("_")[2] not in dumped


def test_verify_and_last_use(tokens: StaticTokenStore, clock: Clock) -> None:
    secret = _create(tokens)
    token = tokens.verify(secret, "10.1.2.3")
    assert token.last_used_at is None
    listed = tokens.list_tokens()[0]
    assert listed.last_used_at is not None
    assert listed.last_used_address == "10.1.2.3"
    identity = token.identity()
    assert identity.name == f"token:{token.id}"
    assert identity.allowed_actions(
        "test/app", protected=lambda r: False, push_requires_oidc=False
    ) == {Action.PULL}
    assert identity.allowed_actions(
        "test/other", protected=lambda r: False, push_requires_oidc=False
    ) == (frozenset())


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"),
        lambda s: "rgw_000000000000_" + s.split("_")[2],
        lambda s: s.upper(),
        lambda s: s + "0",
        lambda s: "rgw_",
    ],
)
def test_wrong_secret_rejected_generically(tokens: StaticTokenStore, mangle: object) -> None:
    secret = _create(tokens)
    assert callable(mangle)
    with pytest.raises(AuthenticationError, match=r"^invalid static token"):
        tokens.verify(mangle(secret), "10.0.0.1")


def test_expired_rejected(tokens: StaticTokenStore, clock: Clock) -> None:
    secret = _create(tokens, days=1)
    clock.advance(DAY)
    with pytest.raises(AuthenticationError, match=r"static token [0-9a-f]{12} is expired"):
        tokens.verify(secret, "10.0.0.1")


def test_revoked_rejected(tokens: StaticTokenStore) -> None:
    secret = _create(tokens)
    token_id = secret.split("_")[1]
    revoked = tokens.revoke(token_id)
    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationError, match="is revoked"):
        tokens.verify(secret, "10.0.0.1")
    with pytest.raises(TokenStoreError, match="already revoked"):
        tokens.revoke(token_id)
    assert tokens.is_active(token_id) is False


def test_revoke_unknown(tokens: StaticTokenStore) -> None:
    with pytest.raises(TokenStoreError, match="token 0123456789ab not found"):
        tokens.revoke("0123456789ab")


def test_rotate_overlap(tokens: StaticTokenStore, clock: Clock) -> None:
    old = _create(tokens)
    token_id = old.split("_")[1]
    clock.advance(60)
    rotated = tokens.rotate(token_id)
    assert rotated.secret != old
    assert tokens.verify(old, "a").id == token_id
    assert tokens.verify(rotated.secret, "a").id == token_id
    clock.advance(3600)
    with pytest.raises(AuthenticationError, match="invalid static token"):
        tokens.verify(old, "a")
    assert tokens.verify(rotated.secret, "a").id == token_id


def test_rotate_twice_drops_oldest(tokens: StaticTokenStore) -> None:
    first = _create(tokens)
    token_id = first.split("_")[1]
    second = tokens.rotate(token_id).secret
    third = tokens.rotate(token_id).secret
    with pytest.raises(AuthenticationError):
        tokens.verify(first, "a")
    assert tokens.verify(second, "a")
    assert tokens.verify(third, "a")


def test_rotate_new_expiry(tokens: StaticTokenStore, clock: Clock) -> None:
    secret = _create(tokens, days=1)
    token_id = secret.split("_")[1]
    rotated = tokens.rotate(token_id, expires_in=30 * DAY)
    assert rotated.token.expires_at.timestamp() == clock.now + 30 * DAY
    # The old secret's overlap never outlasts the old expiry.
    assert rotated.token.previous_valid_until is not None
    assert rotated.token.previous_valid_until.timestamp() <= clock.now + 3600


def test_rotate_revoked_refused(tokens: StaticTokenStore) -> None:
    token_id = _create(tokens).split("_")[1]
    tokens.revoke(token_id)
    with pytest.raises(TokenStoreError, match="is revoked: create a new token"):
        tokens.rotate(token_id)


def test_revoke_ends_overlap(tokens: StaticTokenStore) -> None:
    old = _create(tokens)
    token_id = old.split("_")[1]
    new = tokens.rotate(token_id).secret
    tokens.revoke(token_id)
    for secret in (old, new):
        with pytest.raises(AuthenticationError):
            tokens.verify(secret, "a")


@pytest.mark.parametrize("expires_in", [0, -5, 91 * DAY])
def test_expiry_capped(tokens: StaticTokenStore, expires_in: int) -> None:
    with pytest.raises(TokenStoreError, match="expiry"):
        tokens.create(
            repositories=["a/b"], actions=[Action.PULL], expires_in=expires_in, description=""
        )


def test_requires_repository_and_action(tokens: StaticTokenStore) -> None:
    with pytest.raises(TokenStoreError, match="at least one repository"):
        tokens.create(repositories=[], actions=[Action.PULL], expires_in=DAY, description="")
    with pytest.raises(TokenStoreError, match="at least one action"):
        tokens.create(repositories=["a/b"], actions=[], expires_in=DAY, description="")


def test_list_shows_status(tokens: StaticTokenStore, clock: Clock) -> None:
    active = _create(tokens)
    revoked = _create(tokens)
    tokens.revoke(revoked.split("_")[1])
    expiring = _create(tokens, days=1)
    clock.advance(DAY)
    from datetime import UTC, datetime

    now = datetime.fromtimestamp(clock.now, UTC)
    statuses = {t.id: t.status(now) for t in tokens.list_tokens()}
    assert statuses == {
        active.split("_")[1]: "active",
        revoked.split("_")[1]: "revoked",
        expiring.split("_")[1]: "expired",
    }


def test_invalid_repository_glob_refused(tokens: StaticTokenStore) -> None:
    with pytest.raises(TokenStoreError, match="invalid pattern 'Acme/App'"):
        tokens.create(
            repositories=["Acme/App"], actions=[Action.PULL], expires_in=DAY, description=""
        )


def test_repository_globs_use_policy_syntax(tokens: StaticTokenStore) -> None:
    secret = tokens.create(
        repositories=["team/**", "apps/*"], actions=[Action.PULL], expires_in=DAY, description=""
    ).secret
    identity = tokens.verify(secret, "a").identity()

    def allowed(repository: str) -> bool:
        actions = identity.allowed_actions(
            repository, protected=lambda r: False, push_requires_oidc=False
        )
        return Action.PULL in actions

    assert allowed("team")
    assert allowed("team/a/b")
    assert allowed("apps/web")
    assert not allowed("apps/web/extra")
    assert not allowed("teams/a")
