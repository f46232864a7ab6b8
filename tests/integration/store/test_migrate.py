"""Tests of `Store.migrate`: idempotence, concurrency, and models that match the migrations."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from regward.store import AuditRecord, Base, Store, StoreError
from regward.store.db import MIGRATIONS_DIR

OWN_TABLES = {"audit_log", "tag_claims"}
REPO_ROOT = Path(__file__).resolve().parents[3]


def head_revisions() -> set[str]:
    return set(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def current_revisions(store: Store) -> set[str]:
    with store.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def test_first_revision_id() -> None:
    script = ScriptDirectory(str(MIGRATIONS_DIR))

    first = script.get_revision("0001")

    assert first is not None
    assert first.down_revision is None
    assert Path(first.path).name == "0001_initial.py"


def test_migrate_creates_tables(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())

    assert OWN_TABLES <= tables
    assert current_revisions(store) == head_revisions()
    indexes = {index["name"] for index in inspect(store.engine).get_indexes("audit_log")}
    assert {"ix_audit_log_repository_time", "ix_audit_log_digest"} <= indexes


def test_migrate_twice_keeps_data(store: Store) -> None:
    record = AuditRecord(
        time=datetime.now(UTC), action="pull", repository="team/app", decision="allow"
    )
    store.record([record])

    store.migrate()
    store.migrate()

    assert current_revisions(store) == head_revisions()
    assert [item.repository for item in store.list_audit()] == ["team/app"]


def test_models_match_migrations(store: Store) -> None:
    def own_objects(
        item: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        table = getattr(item, "table", item)
        table_name = name if type_ == "table" else getattr(table, "name", None)
        return table_name in OWN_TABLES

    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": own_objects, "compare_type": True}
        )
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_concurrent_migrate_threads(database_url: str) -> None:
    stores = [Store(database_url) for _ in range(2)]
    barrier = threading.Barrier(len(stores))
    errors: list[Exception] = []

    def migrate(store: Store) -> None:
        barrier.wait()
        try:
            store.migrate()
        except Exception as exc:
            # Collected so that the main thread can assert on them.
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    try:
        assert errors == []
        assert current_revisions(stores[0]) == head_revisions()
    finally:
        for store in stores:
            store.close()


def test_concurrent_migrate_processes(database_url: str) -> None:
    code = "import sys; from regward.store import Store; Store(sys.argv[1]).migrate()"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, database_url],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    with Store(database_url) as store:
        assert current_revisions(store) == head_revisions()


def test_migrate_unreachable_sqlite_path(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'absent' / 'store.db'}")

    with pytest.raises(StoreError, match=r"migrate failed on sqlite\+pysqlite:///.*unable to open"):
        store.migrate()
    store.close()


def test_migrate_wraps_database_errors(store: Store) -> None:
    # A table that the first migration wants to create already exists under that name.
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE alembic_version"))

    with pytest.raises(StoreError, match=r"migrate failed on .*audit_log.*already exists"):
        store.migrate()
