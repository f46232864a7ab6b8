"""Tests of URL handling, password masking, SQLite settings and the timestamp type."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Dialect, create_engine, text
from sqlalchemy.dialects.sqlite.base import SQLiteDialect

from regward.store import AuditRecord, Store, StoreError, UtcDateTime, normalize_database_url
from regward.store.db import _enable_wal
from tests.integration.store.conftest import POSTGRES_HOST, POSTGRES_PORT, reset_postgres


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite://", "sqlite+pysqlite://"),
        ("sqlite:///relative.db", "sqlite+pysqlite:///relative.db"),
        ("sqlite:////abs/store.db", "sqlite+pysqlite:////abs/store.db"),
        ("sqlite+pysqlite:///x.db", "sqlite+pysqlite:///x.db"),
        ("postgresql://u@db.example/regward", "postgresql+psycopg://u@db.example/regward"),
        ("postgres://u@db.example:5433/regward", "postgresql+psycopg://u@db.example:5433/regward"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_normalize_database_url(url: str, expected: str) -> None:
    assert normalize_database_url(url).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:hunter2@h/d", r"unsupported database URL scheme 'mysql'"),
        (
            "postgresql+psycopg2://u:hunter2@h/d",
            r"unsupported database URL scheme 'postgresql\+psycopg2'",
        ),
        ("not a url hunter2", r"invalid database URL: expected sqlite:///path"),
    ],
)
def test_unsupported_url(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as caught:
        Store(url)

    assert "hunter2" not in str(caught.value)


def test_password_never_shown(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    # Port 1 on loopback refuses the connection, so the error path runs without a server.
    url = f"postgresql://postgres:hunter2@{POSTGRES_HOST}:1/regward"
    caplog.set_level(logging.DEBUG)

    store = Store(url, busy_timeout=1)
    with pytest.raises(StoreError) as caught:
        store.migrate()
    store.close()

    assert store.safe_url == f"postgresql+psycopg://postgres:***@{POSTGRES_HOST}:1/regward"
    assert "hunter2" not in repr(store)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in caplog.text
    assert f"migrate failed on {store.safe_url}" in str(caught.value)


@pytest.mark.postgres
def test_password_masked_on_live_server(
    caplog: pytest.LogCaptureFixture, postgres_database: str
) -> None:
    # Trust authentication ignores the password, so the whole path runs with one in the URL.
    reset_postgres(postgres_database)
    url = f"postgresql://postgres:hunter2@{POSTGRES_HOST}:{POSTGRES_PORT}/{postgres_database}"
    caplog.set_level(logging.DEBUG)

    with Store(url) as store:
        store.migrate()
        store.claim_tag("team/app", "v1", "sha256:" + "a" * 64)

    assert "hunter2" not in caplog.text
    assert "postgres:***@" in caplog.text


def test_sqlite_uses_wal_and_busy_timeout(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'store.db'}", busy_timeout=2.5) as store:
        with store.engine.connect() as connection:
            journal_mode = connection.execute(text("PRAGMA journal_mode")).scalar_one()
            busy_timeout = connection.execute(text("PRAGMA busy_timeout")).scalar_one()

    assert journal_mode == "wal"
    assert busy_timeout == 2500


def test_sqlite_transactions_roll_back_ddl(tmp_path: Path) -> None:
    # Python's sqlite3 module would run DDL outside the transaction without the begin hook.
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with pytest.raises(RuntimeError), store.engine.begin() as connection:
            connection.execute(text("CREATE TABLE scratch (x INTEGER)"))
            raise RuntimeError("roll back")
        with store.engine.connect() as connection:
            tables = connection.execute(
                text("SELECT name FROM sqlite_master WHERE name = 'scratch'")
            ).all()

    assert tables == []


def test_in_memory_store_round_trip() -> None:
    with Store("sqlite://") as store:
        store.migrate()
        store.record(
            [AuditRecord(time=datetime.now(UTC), action="pull", repository="r", decision="allow")]
        )

        assert [record.repository for record in store.list_audit()] == ["r"]


def test_close_twice() -> None:
    store = Store("sqlite://")

    store.close()
    store.close()


# Creating an engine opens no connection; it only provides the dialect object.
POSTGRES_DIALECT = create_engine("postgresql+psycopg://").dialect


@pytest.mark.parametrize("dialect", [SQLiteDialect(), POSTGRES_DIALECT])
def test_utc_datetime_rejects_naive(dialect: Dialect) -> None:
    with pytest.raises(ValueError, match=r"expected a timezone-aware datetime"):
        UtcDateTime().process_bind_param(datetime(2026, 1, 1), dialect)


def test_utc_datetime_conversions() -> None:
    aware = datetime(2026, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    column = UtcDateTime()

    stored_sqlite = column.process_bind_param(aware, SQLiteDialect())
    stored_postgres = column.process_bind_param(aware, POSTGRES_DIALECT)

    assert stored_sqlite == datetime(2026, 1, 1, 0, 0)
    assert stored_postgres == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert column.process_result_value(datetime(2026, 1, 1), SQLiteDialect()) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    assert column.process_bind_param(None, SQLiteDialect()) is None


class LockedCursor:
    """A cursor whose first `failures` executions raise the given sqlite3 error."""

    def __init__(self, failures: int, message: str = "database is locked") -> None:
        self.failures = failures
        self.message = message
        self.calls = 0

    def execute(self, statement: str) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise sqlite3.OperationalError(self.message)


def test_enable_wal_retries_while_locked() -> None:
    cursor = LockedCursor(failures=2)

    _enable_wal(cursor, timeout=5)  # type: ignore[arg-type]

    assert cursor.calls == 3


def test_enable_wal_gives_up_at_deadline() -> None:
    cursor = LockedCursor(failures=1000)

    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        _enable_wal(cursor, timeout=0.05)  # type: ignore[arg-type]
    assert cursor.calls > 1


def test_enable_wal_raises_other_errors_at_once() -> None:
    cursor = LockedCursor(failures=1, message="disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        _enable_wal(cursor, timeout=5)  # type: ignore[arg-type]
    assert cursor.calls == 1
