"""Every decision of the gate lands in the audit table, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from regward.store.db import Store
from tests.integration.gate.conftest import Keys, Signer, write_policy
from tests.support.gate import run_gate
from tests.support.images import push_image
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


def pull(url: str) -> int:
    request = urllib.request.Request(
        url, headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_for_records(store: Store, repository: str, count: int) -> list:
    deadline = time.monotonic() + 10
    while True:
        records = store.list_audit(repository=repository)
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def postgres_listening() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not postgres_listening():
        pytest.skip("PostgreSQL is not listening on 127.0.0.1:5432")
    import psycopg

    name = f"regward_gate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(
            "host=127.0.0.1 user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_decisions_recorded(
    backend: str,
    tmp_path: Path,
    registry: RunningRegistry,
    keys: Keys,
    sign: Signer,
    request: pytest.FixtureRequest,
) -> None:
    database = (
        f"sqlite:///{tmp_path / 'audit.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    policy = write_policy(tmp_path, keys)
    signed = push_image(registry.url, "test/audited", "v1")
    sign("test/audited", signed.digest)
    unsigned = push_image(registry.url, "test/audited", "v2", {"b": b"2"})

    with run_gate(tmp_path, registry.url, policy, database=database) as gate:
        assert pull(f"{gate.url}/v2/test/audited/manifests/v1") == 200
        assert pull(f"{gate.url}/v2/test/audited/manifests/v2") == 403
        store = Store(database)
        try:
            records = wait_for_records(store, "test/audited", 2)
        finally:
            store.close()

    by_reference = {record.reference: record for record in records}
    allowed, denied = by_reference["v1"], by_reference["v2"]
    assert str(allowed.decision) == "allow"
    assert allowed.digest == signed.digest
    assert allowed.rule == "ci-signed"
    assert allowed.client_address == "127.0.0.1"
    assert str(allowed.action) == "pull"
    assert str(denied.decision) == "deny"
    assert denied.digest == unsigned.digest
    assert "no signature verified by authority 'ci'" in denied.reasons[0]
    assert denied.policy_revision == allowed.policy_revision
    assert denied.request_id


def test_audit_command_lists_records(tmp_path: Path, registry: RunningRegistry, keys: Keys) -> None:
    database = f"sqlite:///{tmp_path / 'audit.db'}"
    policy = write_policy(tmp_path, keys)
    push_image(registry.url, "test/listed", "v1")
    with run_gate(tmp_path, registry.url, policy, database=database) as gate:
        assert pull(f"{gate.url}/v2/test/listed/manifests/v1") == 403
        store = Store(database)
        try:
            wait_for_records(store, "test/listed", 1)
        finally:
            store.close()

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "regward.cli.main",
            "audit",
            "--database",
            database,
            "--repository",
            "test/listed",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 1
    assert lines[0]["decision"] == "deny"
    assert lines[0]["rule"] == "ci-signed"
