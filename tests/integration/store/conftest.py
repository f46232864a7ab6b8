"""Fixtures that run every store test on SQLite and on PostgreSQL.

PostgreSQL tests use one database on 127.0.0.1:5432 (user postgres, trust authentication)
that the session creates and drops at its end. Each test starts from an empty `public`
schema. The tests are skipped only when nothing listens on that address.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from regward.store import Store

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_ADMIN = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user=postgres dbname=postgres"


def postgres_listening() -> bool:
    """Return whether something accepts TCP connections on the PostgreSQL address."""
    try:
        with socket.create_connection((POSTGRES_HOST, POSTGRES_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """Create a uniquely named database for this session and yield its name."""
    if not postgres_listening():
        pytest.skip(f"no PostgreSQL listens on {POSTGRES_HOST}:{POSTGRES_PORT}")
    name = f"regward_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def reset_postgres(name: str) -> None:
    """Empty the `public` schema of database `name`."""
    conninfo = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user=postgres dbname={name}"
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database: a new SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    name: str = request.getfixturevalue("postgres_database")
    reset_postgres(name)
    return f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store on an empty database."""
    with Store(database_url) as opened:
        opened.migrate()
        yield opened
