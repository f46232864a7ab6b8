"""The re-evaluation, portfolio and notification tables against both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from regward.notify import DeliveryState, Event, EventType, FindingSummary, NotificationStore
from regward.reeval import (
    JobKind,
    JobState,
    JobStore,
    Membership,
    MembershipStore,
    ResultChange,
    Sighting,
)
from regward.store import Base, Store

OWN_TABLES = {
    "reeval_jobs",
    "reeval_state",
    "reeval_changes",
    "portfolio_images",
    "portfolio_tags",
    "notification_events",
    "webhook_deliveries",
}


class Clock:
    """A settable clock for the stores."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_models_match_migration(store: Store) -> None:
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


def test_job_resumes_after_expired_lease(store: Store) -> None:
    clock = Clock()
    jobs = JobStore(store.engine, clock=clock)
    job_id = jobs.enqueue(JobKind.DELTA, "rev-2", previous_revision="rev-1", keys=[("PyPI", "a")])

    first = jobs.claim(lease=60)
    assert first is not None and first.id == job_id
    jobs.progress(job_id, cursor="sha256:b", processed=2, changed=1, lease=60)
    assert jobs.claim(lease=60) is None
    clock.now += timedelta(seconds=61)
    resumed = jobs.claim(lease=60)

    assert resumed is not None
    assert resumed.id == job_id
    assert resumed.state is JobState.RUNNING
    assert resumed.cursor == "sha256:b"
    assert resumed.keys == {("PyPI", "a")}
    assert resumed.previous_revision == "rev-1"
    assert (resumed.processed, resumed.changed) == (2, 1)


def test_enqueue_once_per_revision(store: Store) -> None:
    jobs = JobStore(store.engine)

    first = jobs.enqueue(JobKind.FULL, "rev-1", only_if_revision_differs=True)
    second = jobs.enqueue(JobKind.FULL, "rev-1", only_if_revision_differs=True)

    assert first is not None
    assert second is None
    assert jobs.get_state("feed_revision") == "rev-1"


def test_failing_job_is_given_up(store: Store) -> None:
    jobs = JobStore(store.engine)
    job_id = jobs.enqueue(JobKind.FULL, "rev-1")
    assert job_id is not None

    states = []
    for _ in range(5):
        job = jobs.claim(lease=60)
        assert job is not None
        states.append(jobs.release(job.id, "boom"))

    assert states[:4] == [JobState.PENDING] * 4
    assert states[4] is JobState.FAILED
    assert jobs.claim(lease=60) is None
    assert jobs.jobs()[0].error == "boom"


def test_finish_sets_state_atomically(store: Store) -> None:
    jobs = JobStore(store.engine)
    job_id = jobs.enqueue(JobKind.FULL, "rev-1")
    assert job_id is not None

    jobs.finish(job_id, state_updates={"last_full_at": "2026-12-01T00:00:00+00:00"})

    assert jobs.get_state("last_full_at") == "2026-12-01T00:00:00+00:00"
    assert not jobs.has_open()


def test_change_log(store: Store) -> None:
    jobs = JobStore(store.engine)
    before = jobs.last_change_id()

    jobs.record_changes([ResultChange("sha256:a", (), (), "rev-1")])
    entries = jobs.changes_after(before)

    assert [entry.digest for entry in entries] == ["sha256:a"]
    assert jobs.changes_after(entries[-1].id) == []


def test_membership_tags_follow_last_sighting(store: Store) -> None:
    membership = MembershipStore(store.engine)

    membership.record(
        [
            Sighting("prod/app", "sha256:a", "v1", Membership.PULL),
            Sighting("prod/app", "sha256:a", "stable", Membership.PULL),
            Sighting("dev/app", "sha256:a", None, Membership.PUSH),
        ]
    )
    membership.record([Sighting("prod/app", "sha256:b", "stable", Membership.ENROLL)])
    placements = membership.placements(["sha256:a", "sha256:b"])

    assert [(p.repository, p.tags) for p in placements["sha256:a"]] == [
        ("dev/app", ()),
        ("prod/app", ("v1",)),
    ]
    assert [(p.repository, p.tags) for p in placements["sha256:b"]] == [("prod/app", ("stable",))]
    assert membership.digests() == ["sha256:a", "sha256:b"]


def test_notification_deliveries_lifecycle(store: Store) -> None:
    clock = Clock()
    notifications = NotificationStore(store.engine, clock=clock)
    event = Event(
        type=EventType.VULNERABILITY_DENIED,
        repository="prod/app",
        digest="sha256:a",
        tags=("v1",),
        rule="production",
        findings=(FindingSummary("PYSEC-1", "high", "requests", "2.19.0"),),
    )

    notifications.record(event, ["one", "two"])
    claimed = notifications.claim_due(limit=10, lease=30)
    again = notifications.claim_due(limit=10, lease=30)
    notifications.mark_delivered(claimed[0].id, 200)
    notifications.mark_failed(claimed[1].id, status=500, error="HTTP 500", retry_in=5)
    clock.now += timedelta(seconds=6)
    retried = notifications.claim_due(limit=10, lease=30)
    notifications.mark_failed(retried[0].id, status=None, error="timed out", retry_in=None)

    assert [d.webhook for d in claimed] == ["one", "two"]
    assert claimed[0].payload["findingIds"] == ["PYSEC-1"]
    assert again == []
    assert [d.id for d in retried] == [claimed[1].id]
    dead = notifications.deliveries(state=DeliveryState.DEAD)
    assert [(d.webhook, d.attempts, d.last_error) for d in dead] == [("two", 2, "timed out")]
    delivered = notifications.deliveries(state=DeliveryState.DELIVERED)
    assert [(d.webhook, d.last_status) for d in delivered] == [("one", 200)]
    assert notifications.events(digest="sha256:a")[0]["id"] == event.id
