"""Static tokens and the token service on SQLite and on a PostgreSQL database made for the test.

The PostgreSQL variant creates a uniquely named database on 127.0.0.1:5432 (user postgres, trust
authentication) and drops it at the end. It is skipped when nothing listens there.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from psycopg import sql

from regward.auth.config import load_auth_settings
from regward.auth.errors import AuthenticationError
from regward.auth.models import StaticTokenRow
from regward.auth.scope import Action
from regward.auth.service import AuthService
from regward.auth.static import StaticTokenStore
from regward.store.db import Store
from regward.store.models import Base

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_ADMIN = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user=postgres dbname=postgres"
DAY = 86400


def _postgres_listening() -> bool:
    try:
        with socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not _postgres_listening():
        pytest.skip(f"no PostgreSQL listens on {POSTGRES_HOST}:{POSTGRES_PORT}")
    name = f"regward_auth_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'auth.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    with Store(database_url) as opened:
        opened.migrate()
        yield opened


def test_model_matches_migration(store: Store) -> None:
    def static_tokens_only(
        item: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        table = getattr(item, "table", item)
        table_name = name if type_ == "table" else getattr(table, "name", None)
        return table_name == StaticTokenRow.__tablename__

    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": static_tokens_only, "compare_type": True}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_token_lifecycle(store: Store) -> None:
    tokens = StaticTokenStore(
        store.engine, max_lifetime=90 * DAY, rotation_overlap=0, clock=lambda: 1_900_000_000.0
    )
    issued = tokens.create(
        repositories=["test/app"], actions=[Action.PULL], expires_in=DAY, description="pg"
    )
    assert tokens.verify(issued.secret, "10.0.0.1").id == issued.token.id
    listed = tokens.list_tokens()
    assert [t.id for t in listed] == [issued.token.id]
    assert listed[0].expires_at.timestamp() == 1_900_000_000 + DAY
    assert listed[0].last_used_address == "10.0.0.1"

    rotated = tokens.rotate(issued.token.id)
    with pytest.raises(AuthenticationError):
        tokens.verify(issued.secret, "10.0.0.1")
    assert tokens.verify(rotated.secret, "10.0.0.1").id == issued.token.id
    tokens.revoke(issued.token.id)
    with pytest.raises(AuthenticationError, match="revoked"):
        tokens.verify(rotated.secret, "10.0.0.1")


def test_concurrent_rotations_one_wins(store: Store) -> None:
    tokens = StaticTokenStore(
        store.engine, max_lifetime=90 * DAY, rotation_overlap=3600, clock=lambda: 1_900_000_000.0
    )
    token_id = tokens.create(
        repositories=["a/b"], actions=[Action.PULL], expires_in=DAY, description=""
    ).token.id
    barrier = threading.Barrier(4)
    secrets: list[str] = []
    failures: list[Exception] = []

    def rotate() -> None:
        barrier.wait()
        try:
            secrets.append(tokens.rotate(token_id).secret)
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=rotate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # A rotation applies only if the secret it read is still current, so the losers of a race
    # fail cleanly. The secrets of the last two winners work: the current and the previous one.
    assert secrets
    assert all("rotated by someone else" in str(failure) for failure in failures)
    assert len(secrets) + len(failures) == 4
    working = 0
    for secret in secrets:
        try:
            tokens.verify(secret, "a")
            working += 1
        except AuthenticationError:
            pass
    assert working == min(len(secrets), 2)


async def test_token_endpoint_on_database(store: Store, tmp_path: Path) -> None:
    settings = load_auth_settings({"enabled": True, "service": "regward-test"}, tmp_path)
    service = AuthService(settings, store, realm="http://127.0.0.1:1/token")
    secret = service.static_tokens.create(
        repositories=["test/app"], actions=[Action.PULL], expires_in=DAY, description=""
    ).secret
    authorization = "Basic " + base64.b64encode(f"ci:{secret}".encode()).decode()
    response = await service.token_endpoint(
        "GET",
        b"service=regward-test&scope=repository:test/app:pull",
        {"Authorization": authorization},
        b"",
        "10.0.0.1",
    )
    assert response.status == 200
    records = store.list_audit(repository="test/app")
    assert [(r.identity, str(r.decision)) for r in records] == [
        (f"token:{secret.split('_')[1]}", "allow")
    ]
