"""Deployment records through the store's migrations, on SQLite and PostgreSQL, and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from regward.admission.config import AdmissionSettings
from regward.admission.interface import AdmittedContainer
from regward.admission.records import DeploymentRecorder
from regward.admission.review import validate
from regward.cli.main import main
from regward.store import Base, Store
from tests.unit.admission.reviews import (
    DIGEST_A,
    FakeDecider,
    pod_spec,
    response_of,
    review,
    workload,
)

IMAGE = "registry.example.com/team/app:v1"


def test_migration_creates_deployments_matching_model(store: Store) -> None:
    assert "deployments" in inspect(store.engine).get_table_names()
    indexes = {index["name"] for index in inspect(store.engine).get_indexes("deployments")}
    assert {"ix_deployments_workload", "ix_deployments_admitted_at"} <= indexes

    def deployments_only(
        item: object, name: str | None, type_: str, reflected: bool, compare_to: object
    ) -> bool:
        table = getattr(item, "table", item)
        table_name = name if type_ == "table" else getattr(table, "name", None)
        return table_name == "deployments"

    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": deployments_only, "compare_type": True}
        )
        assert compare_metadata(context, Base.metadata) == []


async def test_validate_records_admitted_workload(store: Store) -> None:
    recorder = DeploymentRecorder(store.engine)
    decider = FakeDecider()
    decider.allow(IMAGE)
    before = datetime.now(UTC)

    body = review(workload("Deployment", "web", "shop", pod_spec({"app": IMAGE})), uid="u-1")
    status, payload = await validate(body, decider, AdmissionSettings(), recorder=recorder)
    assert status == 200
    assert response_of(payload)["allowed"] is True

    dry = review(workload("Deployment", "dry", "shop", pod_spec({"app": IMAGE})), dry_run=True)
    await validate(dry, decider, AdmissionSettings(), recorder=recorder)

    records = recorder.list_at(datetime.now(UTC))
    assert [
        (r.namespace, r.kind, r.name, r.container, r.image, r.digest, r.request_uid)
        for r in records
    ] == [("shop", "Deployment", "web", "app", IMAGE, DIGEST_A, "u-1")]
    assert records[0].admitted_at >= before - timedelta(seconds=1)

    old = workload("Deployment", "web", "shop", pod_spec({"app": IMAGE}))
    await validate(
        review(None, operation="DELETE", old=old), decider, AdmissionSettings(), recorder=recorder
    )
    assert recorder.list_at(datetime.now(UTC) + timedelta(seconds=1)) == []
    assert len(recorder.list_at(records[0].admitted_at)) == 1


def test_deployments_command_lists_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'regward.db'}"
    with Store(url) as opened:
        opened.migrate()
        recorder = DeploymentRecorder(opened.engine)
        t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        recorder.record(
            "shop",
            "Deployment",
            "web",
            [AdmittedContainer("app", "containers", IMAGE, DIGEST_A)],
            request_uid="u1",
            at=t0,
        )
        recorder.record(
            "billing",
            "StatefulSet",
            "db",
            [AdmittedContainer("db", "containers", "r.example/db:15", None)],
            request_uid="u2",
            at=t0 + timedelta(days=1),
        )

    assert main(["deployments", "--at", "2026-03-01T13:00:00Z", "--database", url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "NAMESPACE",
        "KIND",
        "NAME",
        "CONTAINER",
        "IMAGE",
        "DIGEST",
        "ADMITTED",
        "ENDED",
    ]
    assert out[1].split() == [
        "shop",
        "Deployment",
        "web",
        "app",
        IMAGE,
        DIGEST_A,
        "2026-03-01T12:00:00Z",
        "-",
    ]
    assert len(out) == 2

    assert (
        main(
            [
                "deployments",
                "--at",
                "2026-03-03",
                "--namespace",
                "billing",
                "--database",
                url,
                "--output",
                "json",
            ]
        )
        == 0
    )
    document = json.loads(capsys.readouterr().out)
    assert [(item["namespace"], item["name"], item["digest"]) for item in document] == [
        ("billing", "db", None)
    ]
    assert document[0]["admittedAt"] == "2026-03-02T12:00:00Z"

    assert main(["deployments", "--at", "2026-02-01T00:00:00+01:00", "--database", url]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no deployments current at 2026-01-31T23:00:00Z" in captured.err

    assert main(["deployments", "--at", "yesterday", "--database", url]) == 2
    assert "invalid --at 'yesterday'" in capsys.readouterr().err
