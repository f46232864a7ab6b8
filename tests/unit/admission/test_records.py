"""Deployment records on SQLite: recording, replacement, ends and point-in-time listing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool

from regward.admission.interface import AdmittedContainer, RecordsError
from regward.admission.records import DeploymentRecorder, DeploymentRow

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DIGEST_1 = "sha256:" + "1" * 64
DIGEST_2 = "sha256:" + "2" * 64


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://", poolclass=StaticPool)
    DeploymentRow.metadata.create_all(engine, tables=[DeploymentRow.__table__])  # type: ignore[list-item]
    yield engine
    engine.dispose()


def app(
    image: str = "r.example/app:v1", digest: str | None = DIGEST_1, name: str = "app"
) -> AdmittedContainer:
    return AdmittedContainer(name, "containers", image, digest)


def current(
    recorder: DeploymentRecorder, at: datetime, namespace: str | None = None
) -> list[tuple[str, str, str, str | None]]:
    return [
        (record.name, record.container, record.image, record.digest)
        for record in recorder.list_at(at, namespace=namespace)
    ]


def test_record_round_trip(engine: Engine) -> None:
    recorder = DeploymentRecorder(engine)
    recorder.record(
        "shop",
        "Deployment",
        "web",
        [app(), AdmittedContainer("init", "initContainers", "r.example/init:1", None)],
        request_uid="u1",
        at=T0,
    )

    records = recorder.list_at(T0 + timedelta(seconds=1))

    assert [
        (
            r.namespace,
            r.kind,
            r.name,
            r.container,
            r.container_list,
            r.image,
            r.digest,
            r.request_uid,
        )
        for r in records
    ] == [
        ("shop", "Deployment", "web", "app", "containers", "r.example/app:v1", DIGEST_1, "u1"),
        ("shop", "Deployment", "web", "init", "initContainers", "r.example/init:1", None, "u1"),
    ]
    assert records[0].admitted_at == T0
    assert records[0].admitted_at.tzinfo is UTC
    assert records[0].ended_at is None


def test_not_current_before_admission(engine: Engine) -> None:
    recorder = DeploymentRecorder(engine)
    recorder.record("shop", "Deployment", "web", [app()], request_uid="u1", at=T0)
    assert current(recorder, T0 - timedelta(microseconds=1)) == []
    assert len(current(recorder, T0)) == 1


def test_changed_image_replaces_record(engine: Engine) -> None:
    recorder = DeploymentRecorder(engine)
    recorder.record(
        "shop",
        "Deployment",
        "web",
        [app(), app("r.example/proxy:1", DIGEST_1, "proxy")],
        request_uid="u1",
        at=T0,
    )
    later = T0 + timedelta(hours=1)
    recorder.record(
        "shop",
        "Deployment",
        "web",
        [app("r.example/app:v2", DIGEST_2), app("r.example/proxy:1", DIGEST_1, "proxy")],
        request_uid="u2",
        at=later,
    )

    assert current(recorder, T0 + timedelta(minutes=30)) == [
        ("web", "app", "r.example/app:v1", DIGEST_1),
        ("web", "proxy", "r.example/proxy:1", DIGEST_1),
    ]
    assert current(recorder, later) == [
        ("web", "app", "r.example/app:v2", DIGEST_2),
        ("web", "proxy", "r.example/proxy:1", DIGEST_1),
    ]
    proxy = [r for r in recorder.list_at(later) if r.container == "proxy"][0]
    assert proxy.request_uid == "u1"  # unchanged container keeps its record
    assert proxy.admitted_at == T0


def test_same_tag_new_digest_replaces_record(engine: Engine) -> None:
    recorder = DeploymentRecorder(engine)
    recorder.record("shop", "Deployment", "web", [app()], request_uid="u1", at=T0)
    recorder.record(
        "shop",
        "Deployment",
        "web",
        [app(digest=DIGEST_2)],
        request_uid="u2",
        at=T0 + timedelta(minutes=5),
    )
    assert current(recorder, T0 + timedelta(minutes=1)) == [
        ("web", "app", "r.example/app:v1", DIGEST_1)
    ]
    assert current(recorder, T0 + timedelta(minutes=5)) == [
        ("web", "app", "r.example/app:v1", DIGEST_2)
    ]


def test_removed_container_ends(engine: Engine) -> None:
    recorder = DeploymentRecorder(engine)
    recorder.record(
        "shop",
        "Deployment",
        "web",
        [app(), app("r.example/proxy:1", None, "proxy")],
        request_uid="u1",
        at=T0,
    )
    recorder.record(
        "shop", "Deployment", "web", [app()], request_uid="u2", at=T0 + timedelta(minutes=5)
    )
    assert [row[1] for row in current(recorder, T0 + timedelta(minutes=5))] == ["app"]


def test_end_on_delete(engine: Engine) -> None:
    recorder = DeploymentRecorder(engine)
    recorder.record("shop", "Deployment", "web", [app()], request_uid="u1", at=T0)
    recorder.record("shop", "CronJob", "web", [app()], request_uid="u2", at=T0)

    ended = recorder.end("shop", "Deployment", "web", at=T0 + timedelta(days=1))

    assert ended == 1
    assert [r.kind for r in recorder.list_at(T0 + timedelta(hours=23))] == ["CronJob", "Deployment"]
    assert [r.kind for r in recorder.list_at(T0 + timedelta(days=1))] == ["CronJob"]
    assert recorder.end("shop", "Deployment", "web") == 0


def test_namespace_filter(engine: Engine) -> None:
    recorder = DeploymentRecorder(engine)
    recorder.record("shop", "Deployment", "web", [app()], request_uid="u1", at=T0)
    recorder.record("billing", "Deployment", "web", [app()], request_uid="u2", at=T0)
    assert [r.namespace for r in recorder.list_at(T0)] == ["billing", "shop"]
    assert [r.namespace for r in recorder.list_at(T0, namespace="shop")] == ["shop"]


def test_times_in_other_zones_compare_in_utc(engine: Engine) -> None:
    recorder = DeploymentRecorder(engine)
    plus_two = timezone(timedelta(hours=2))
    recorder.record(
        "shop",
        "Deployment",
        "web",
        [app()],
        request_uid="u1",
        at=datetime(2026, 3, 1, 14, 0, tzinfo=plus_two),
    )
    assert current(recorder, datetime(2026, 3, 1, 11, 59, tzinfo=UTC)) == []
    assert len(current(recorder, datetime(2026, 3, 1, 12, 0, tzinfo=UTC))) == 1
    assert len(current(recorder, datetime(2026, 3, 1, 12, 0))) == 1  # naive means UTC


def test_clock_used_when_no_time_given(engine: Engine) -> None:
    recorder = DeploymentRecorder(engine, clock=lambda: T0)
    recorder.record("shop", "Deployment", "web", [app()], request_uid="u1")
    assert recorder.list_at(T0)[0].admitted_at == T0


def test_missing_table_raises_records_error() -> None:
    engine = create_engine("sqlite://", poolclass=StaticPool)
    recorder = DeploymentRecorder(engine)
    with pytest.raises(
        RecordsError, match="the database has no deployments table: run `regward serve`"
    ):
        recorder.list_at(T0)
    with pytest.raises(RecordsError, match="recording deployment shop/Deployment/web failed"):
        recorder.record("shop", "Deployment", "web", [app()], request_uid="u1")
