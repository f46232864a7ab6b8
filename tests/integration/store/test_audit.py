"""Tests of the audit log: round trips, ordering, filters, limits and record validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from regward.store import (
    MAX_AUDIT_LIMIT,
    AuditAction,
    AuditDecision,
    AuditRecord,
    Store,
    StoreError,
)

BASE_TIME = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def make_record(
    repository: str = "team/app",
    *,
    time: datetime = BASE_TIME,
    digest: str | None = DIGEST_A,
    decision: str = "allow",
) -> AuditRecord:
    return AuditRecord(
        time=time, action="pull", repository=repository, digest=digest, decision=decision
    )


def test_round_trip_every_field(store: Store) -> None:
    reasons = (
        "no signature verified by authority 'ci' (no signature found)",
        "ünïcödé ✓ 日本語 😀",
        "x" * 100_000,
        "",
    )
    record = AuditRecord(
        time=datetime(2026, 3, 1, 14, 30, 0, 500, tzinfo=timezone(timedelta(hours=2))),
        request_id="req-1",
        client_address="[::1]:51234",
        identity="ci-bot@example.test",
        action=AuditAction.PUSH,
        repository="team/äpp",
        reference="v1.0",
        digest=DIGEST_A,
        decision=AuditDecision.DENY,
        rule="ci-signed",
        reasons=reasons,
        policy_revision="f" * 64,
    )

    store.record([record])
    (stored,) = store.list_audit()

    assert stored.id is not None
    assert stored.time == datetime(2026, 3, 1, 12, 30, 0, 500, tzinfo=UTC)
    assert stored.time.tzinfo is UTC
    assert stored.request_id == "req-1"
    assert stored.client_address == "[::1]:51234"
    assert stored.identity == "ci-bot@example.test"
    assert stored.action is AuditAction.PUSH
    assert stored.repository == "team/äpp"
    assert stored.reference == "v1.0"
    assert stored.digest == DIGEST_A
    assert stored.decision is AuditDecision.DENY
    assert stored.rule == "ci-signed"
    assert stored.reasons == reasons
    assert stored.policy_revision == "f" * 64


def test_many_reasons_round_trip(store: Store) -> None:
    reasons = tuple(f"reason {index} – «{index}»" for index in range(500))

    store.record(
        [
            AuditRecord(
                time=BASE_TIME, action="delete", repository="r", decision="error", reasons=reasons
            )
        ]
    )

    assert store.list_audit()[0].reasons == reasons


def test_optional_fields_round_trip_as_none(store: Store) -> None:
    store.record([make_record(digest=None)])

    (stored,) = store.list_audit()
    assert (stored.request_id, stored.identity, stored.reference, stored.digest) == (None,) * 4
    assert (stored.rule, stored.policy_revision, stored.reasons) == (None, None, ())


def test_newest_first(store: Store) -> None:
    times = [BASE_TIME + timedelta(seconds=offset) for offset in (5, 1, 9, 3)]
    store.record([make_record(f"r/{index}", time=time) for index, time in enumerate(times)])

    listed = store.list_audit()

    assert [record.time for record in listed] == sorted(times, reverse=True)


def test_same_time_reverse_insertion_order(store: Store) -> None:
    store.record([make_record("first"), make_record("second")])
    store.record([make_record("third")])

    assert [record.repository for record in store.list_audit()] == ["third", "second", "first"]


def test_order_across_time_zones(store: Store) -> None:
    # 13:00+02:00 is earlier than 12:00Z although its local clock reads later.
    early = make_record(
        "early", time=datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=2)))
    )
    late = make_record("late", time=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    store.record([late, early])

    assert [record.repository for record in store.list_audit()] == ["late", "early"]


def test_filter_by_repository_and_digest(store: Store) -> None:
    store.record(
        [
            make_record("team/app", digest=DIGEST_A),
            make_record("team/app", digest=DIGEST_B),
            make_record("team/web", digest=DIGEST_A),
        ]
    )

    assert len(store.list_audit(repository="team/app")) == 2
    assert {record.repository for record in store.list_audit(digest=DIGEST_A)} == {
        "team/app",
        "team/web",
    }
    both = store.list_audit(repository="team/app", digest=DIGEST_B)
    assert [(record.repository, record.digest) for record in both] == [("team/app", DIGEST_B)]
    assert store.list_audit(repository="absent") == []


def test_limit(store: Store) -> None:
    store.record([make_record(time=BASE_TIME + timedelta(seconds=index)) for index in range(10)])

    listed = store.list_audit(limit=3)

    assert [record.time.second for record in listed] == [9, 8, 7]


@pytest.mark.parametrize("limit", [0, -1, MAX_AUDIT_LIMIT + 1])
def test_invalid_limit(store: Store, limit: int) -> None:
    with pytest.raises(
        StoreError, match=rf"audit limit must be between 1 and {MAX_AUDIT_LIMIT}, got {limit}"
    ):
        store.list_audit(limit=limit)


def test_empty_batch_is_noop(store: Store) -> None:
    store.record([])

    assert store.list_audit() == []


def test_failed_batch_writes_nothing(store: Store) -> None:
    bad = make_record("bad")
    # Bypass the dataclass check to reach the database's CHECK constraint.
    object.__setattr__(bad, "action", "fly")

    with pytest.raises(StoreError, match=r"record audit failed on .*(ck_audit_log_action|CHECK)"):
        store.record([make_record("good"), bad])

    assert store.list_audit() == []


# --- AuditRecord validation (no database) ---------------------------------------------------


def test_record_converts_strings_to_enums() -> None:
    record = AuditRecord(
        time=BASE_TIME, action="push", repository="r", decision="warn", reasons=["a", "b"]
    )

    assert record.action is AuditAction.PUSH
    assert record.decision is AuditDecision.WARN
    assert record.reasons == ("a", "b")


def test_record_rejects_naive_time() -> None:
    with pytest.raises(
        StoreError, match=r"time must be timezone-aware, got naive 2026-03-01T12:00:00"
    ):
        AuditRecord(time=datetime(2026, 3, 1, 12), action="pull", repository="r", decision="allow")


def test_record_rejects_unknown_action() -> None:
    with pytest.raises(
        StoreError, match=r"invalid audit action 'fetch': expected one of pull, push, delete"
    ):
        AuditRecord(time=BASE_TIME, action="fetch", repository="r", decision="allow")


def test_record_rejects_unknown_decision() -> None:
    with pytest.raises(
        StoreError,
        match=r"invalid audit decision 'maybe': expected one of allow, deny, warn, audit, error",
    ):
        AuditRecord(time=BASE_TIME, action="pull", repository="r", decision="maybe")


def test_record_rejects_string_reasons() -> None:
    with pytest.raises(StoreError, match=r"sequence of strings, got a single string"):
        AuditRecord(time=BASE_TIME, action="pull", repository="r", decision="deny", reasons="no")


def test_record_rejects_non_string_reason() -> None:
    with pytest.raises(StoreError, match=r"audit reasons must be strings, got int"):
        AuditRecord(
            time=BASE_TIME,
            action="pull",
            repository="r",
            decision="deny",
            reasons=["ok", 5],  # type: ignore[list-item]
        )
