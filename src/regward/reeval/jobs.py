"""Persisted re-evaluation work: jobs with a resume cursor, scheduler state, and a change log.

A job is a delta (re-match the digests under some package keys, then mark every other result
valid for the new revision) or a full pass (re-match every digest). Digests are processed in
sorted order and the job's `cursor` is the last digest finished, so a process that crashes
mid-job leaves the job `running` with a lease that expires, and the next process resumes after
the cursor. Jobs run in the order they were created.

`reeval_changes` lists digests whose findings changed, so that gates in other processes can
drop cached decisions (`changes_after`).

Methods block on the database; async callers run them in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from regward.errors import RegwardError
from regward.reeval.rematch import PackageKey, ResultChange
from regward.store.db import SQLITE_BEGIN_IMMEDIATE
from regward.store.models import Base, UtcDateTime

logger = logging.getLogger(__name__)

_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
_JSON = JSON().with_variant(JSONB(), "postgresql")

MAX_JOB_ATTEMPTS = 5
"""Attempts of a job that keeps failing before it is marked failed and skipped."""

STATE_FEED_REVISION = "feed_revision"
"""State key: the feed revision the queued jobs bring every result to."""
STATE_LAST_FULL = "last_full_at"
"""State key: when the last full pass finished (ISO 8601)."""


class ReevalError(RegwardError):
    """Re-evaluation state could not be read or written."""


class JobKind(StrEnum):
    """The kind of a job: which digests it re-matches."""

    DELTA = "delta"
    FULL = "full"


class JobState(StrEnum):
    """The state of a job."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ReevalJobRow(Base):
    """One row of `reeval_jobs`."""

    __tablename__ = "reeval_jobs"
    __table_args__ = (
        CheckConstraint("kind IN ('delta', 'full')", name="kind"),
        CheckConstraint("state IN ('pending', 'running', 'done', 'failed')", name="state"),
        Index("ix_reeval_jobs_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    feed_revision: Mapped[str] = mapped_column(Text)
    """The revision the job brings results to."""
    previous_revision: Mapped[str | None] = mapped_column(Text)
    """For a delta, the revision it starts from."""
    keys: Mapped[list[list[str]]] = mapped_column(_JSON)
    """For a delta, the (ecosystem, name) keys whose digests are re-matched."""
    cursor: Mapped[str | None] = mapped_column(Text)
    """The last digest finished."""
    processed: Mapped[int] = mapped_column(Integer)
    changed: Mapped[int] = mapped_column(Integer)
    """Digests whose findings changed."""
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    error: Mapped[str | None] = mapped_column(Text)


class ReevalStateRow(Base):
    """One row of `reeval_state`: a named value of the scheduler."""

    __tablename__ = "reeval_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ReevalChangeRow(Base):
    """One row of `reeval_changes`: a digest whose findings changed in a re-match."""

    __tablename__ = "reeval_changes"
    __table_args__ = (Index("ix_reeval_changes_time", "time"),)

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(Text)
    time: Mapped[datetime] = mapped_column(UtcDateTime())
    feed_revision: Mapped[str] = mapped_column(Text)
    added: Mapped[list[str]] = mapped_column(_JSON)
    """Finding ids gained."""
    removed: Mapped[list[str]] = mapped_column(_JSON)
    """Finding ids lost."""


@dataclass(frozen=True)
class Job:
    """A job as the scheduler reads it."""

    id: int
    kind: JobKind
    state: JobState
    feed_revision: str
    previous_revision: str | None
    keys: frozenset[PackageKey]
    cursor: str | None
    processed: int
    changed: int
    attempts: int
    created_at: datetime
    """When the job was queued: a delta's feed change was seen by then."""
    error: str | None = None


@dataclass(frozen=True)
class ChangeEntry:
    """One entry of the change log."""

    id: int
    digest: str
    time: datetime
    feed_revision: str
    added: tuple[str, ...]
    removed: tuple[str, ...]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class JobStore:
    """Jobs, state and the change log through a SQLAlchemy engine."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        """Use `engine`, whose database the store's migrations brought up to date."""
        self.engine = engine
        self._write_engine = engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
        self._clock = clock

    @contextmanager
    def _write(self, operation: str) -> Iterator[Connection]:
        try:
            with self._write_engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            logger.debug("re-evaluation store %s failed", operation, exc_info=True)
            raise ReevalError(f"{operation} failed: {_first_line(exc)}") from exc

    @contextmanager
    def _read(self, operation: str) -> Iterator[Connection]:
        try:
            with self.engine.connect() as connection:
                yield connection
        except SQLAlchemyError as exc:
            logger.debug("re-evaluation store %s failed", operation, exc_info=True)
            raise ReevalError(f"{operation} failed: {_first_line(exc)}") from exc

    # -- state -----------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        """Return a state value, None when unset.

        Raises:
            ReevalError: the query failed.
        """
        with self._read("read state") as connection:
            return connection.execute(
                select(ReevalStateRow.value).where(ReevalStateRow.key == key)
            ).scalar_one_or_none()

    def set_state(self, key: str, value: str) -> None:
        """Set a state value.

        Raises:
            ReevalError: the write failed.
        """
        with self._write("write state") as connection:
            _set_state(connection, key, value, self._clock())

    # -- jobs ------------------------------------------------------------------------------

    def enqueue(
        self,
        kind: JobKind,
        feed_revision: str,
        *,
        previous_revision: str | None = None,
        keys: Collection[PackageKey] = (),
        only_if_revision_differs: bool = False,
    ) -> int | None:
        """Queue a job and record `feed_revision` as the revision the queue leads to.

        Args:
            kind: delta or full.
            feed_revision: the revision the job brings results to.
            previous_revision: for a delta, the revision it starts from.
            keys: for a delta, the package keys whose digests to re-match.
            only_if_revision_differs: queue nothing when the recorded revision already equals
                `feed_revision`; two processes that saw the same feed change queue one job.

        Returns:
            The job id, or None when nothing was queued.

        Raises:
            ReevalError: the write failed.
        """
        now = self._clock()
        with self._write("queue job") as connection:
            if only_if_revision_differs:
                current = connection.execute(
                    select(ReevalStateRow.value).where(ReevalStateRow.key == STATE_FEED_REVISION)
                ).scalar_one_or_none()
                if current == feed_revision:
                    return None
            job_id = connection.execute(
                insert(ReevalJobRow)
                .values(
                    kind=str(kind),
                    state=str(JobState.PENDING),
                    feed_revision=feed_revision,
                    previous_revision=previous_revision,
                    keys=[list(key) for key in sorted(keys)],
                    cursor=None,
                    processed=0,
                    changed=0,
                    attempts=0,
                    created_at=now,
                )
                .returning(ReevalJobRow.id)
            ).scalar_one()
            _set_state(connection, STATE_FEED_REVISION, feed_revision, now)
        logger.info(
            "queued %s re-evaluation job %d for feed revision %s (%d package keys)",
            kind,
            job_id,
            feed_revision[:12],
            len(keys),
        )
        return int(job_id)

    def claim(self, *, lease: float) -> Job | None:
        """Take the oldest job that is pending, or running with an expired lease.

        Raises:
            ReevalError: the database failed.
        """
        now = self._clock()
        until = now + timedelta(seconds=lease)
        candidates = (
            select(ReevalJobRow.id)
            .where(
                or_(
                    ReevalJobRow.state == str(JobState.PENDING),
                    (ReevalJobRow.state == str(JobState.RUNNING))
                    & (ReevalJobRow.lease_until < now),
                )
            )
            .order_by(ReevalJobRow.id)
            .limit(5)
        )
        with self._write("claim job") as connection:
            for job_id in connection.execute(candidates).scalars().all():
                taken = connection.execute(
                    update(ReevalJobRow)
                    .where(
                        ReevalJobRow.id == job_id,
                        or_(
                            ReevalJobRow.state == str(JobState.PENDING),
                            (ReevalJobRow.state == str(JobState.RUNNING))
                            & (ReevalJobRow.lease_until < now),
                        ),
                    )
                    .values(
                        state=str(JobState.RUNNING),
                        lease_until=until,
                        started_at=func.coalesce(ReevalJobRow.started_at, now),
                    )
                    .returning(ReevalJobRow.id)
                ).first()
                if taken is not None:
                    row = connection.execute(
                        select(ReevalJobRow).where(ReevalJobRow.id == job_id)
                    ).one()
                    return _job(row)
        return None

    def progress(
        self, job_id: int, *, cursor: str, processed: int, changed: int, lease: float
    ) -> None:
        """Record that the job finished every digest up to `cursor`, and renew its lease.

        Raises:
            ReevalError: the write failed.
        """
        now = self._clock()
        with self._write("record job progress") as connection:
            connection.execute(
                update(ReevalJobRow)
                .where(ReevalJobRow.id == job_id)
                .values(
                    cursor=cursor,
                    processed=ReevalJobRow.processed + processed,
                    changed=ReevalJobRow.changed + changed,
                    lease_until=now + timedelta(seconds=lease),
                )
            )

    def finish(self, job_id: int, *, state_updates: dict[str, str] | None = None) -> None:
        """Mark a job done, and set state values in the same transaction.

        Raises:
            ReevalError: the write failed.
        """
        now = self._clock()
        with self._write("finish job") as connection:
            connection.execute(
                update(ReevalJobRow)
                .where(ReevalJobRow.id == job_id)
                .values(state=str(JobState.DONE), finished_at=now, lease_until=None, error=None)
            )
            for key, value in (state_updates or {}).items():
                _set_state(connection, key, value, now)

    def release(self, job_id: int, error: str) -> JobState:
        """Give a job back after an error; after `MAX_JOB_ATTEMPTS` it is marked failed.

        Returns:
            The job's new state.

        Raises:
            ReevalError: the write failed.
        """
        now = self._clock()
        with self._write("release job") as connection:
            attempts = connection.execute(
                select(ReevalJobRow.attempts).where(ReevalJobRow.id == job_id)
            ).scalar_one()
            state = JobState.FAILED if attempts + 1 >= MAX_JOB_ATTEMPTS else JobState.PENDING
            connection.execute(
                update(ReevalJobRow)
                .where(ReevalJobRow.id == job_id)
                .values(
                    state=str(state),
                    attempts=attempts + 1,
                    lease_until=None,
                    error=error[:500],
                    finished_at=now if state is JobState.FAILED else None,
                )
            )
        return state

    def jobs(self, *, state: JobState | None = None, limit: int = 100) -> list[Job]:
        """Return jobs, newest first.

        Raises:
            ReevalError: the query failed.
        """
        query = select(ReevalJobRow).order_by(ReevalJobRow.id.desc()).limit(limit)
        if state is not None:
            query = query.where(ReevalJobRow.state == str(state))
        with self._read("list jobs") as connection:
            return [_job(row) for row in connection.execute(query)]

    def has_open(self, kind: JobKind | None = None) -> bool:
        """Tell whether a job (of `kind`) is pending or running.

        Raises:
            ReevalError: the query failed.
        """
        query = select(func.count()).where(
            ReevalJobRow.state.in_((str(JobState.PENDING), str(JobState.RUNNING)))
        )
        if kind is not None:
            query = query.where(ReevalJobRow.kind == str(kind))
        with self._read("count jobs") as connection:
            return bool(connection.execute(query).scalar_one())

    # -- change log ------------------------------------------------------------------------

    def record_changes(self, changes: Sequence[ResultChange]) -> None:
        """Append changed digests to the change log.

        Raises:
            ReevalError: the write failed.
        """
        if not changes:
            return
        now = self._clock()
        with self._write("record changes") as connection:
            connection.execute(
                insert(ReevalChangeRow),
                [
                    {
                        "digest": change.digest,
                        "time": now,
                        "feed_revision": change.feed_revision,
                        "added": sorted(change.added),
                        "removed": sorted(change.removed),
                    }
                    for change in changes
                ],
            )

    def changes_after(self, last_id: int, *, limit: int = 1000) -> list[ChangeEntry]:
        """Return change log entries with an id greater than `last_id`, oldest first.

        Raises:
            ReevalError: the query failed.
        """
        query = (
            select(ReevalChangeRow)
            .where(ReevalChangeRow.id > last_id)
            .order_by(ReevalChangeRow.id)
            .limit(limit)
        )
        with self._read("read changes") as connection:
            return [
                ChangeEntry(
                    id=row.id,
                    digest=row.digest,
                    time=row.time,
                    feed_revision=row.feed_revision,
                    added=tuple(row.added),
                    removed=tuple(row.removed),
                )
                for row in connection.execute(query)
            ]

    def last_change_id(self) -> int:
        """Return the id of the newest change log entry, 0 when the log is empty.

        Raises:
            ReevalError: the query failed.
        """
        with self._read("read changes") as connection:
            value = connection.execute(select(func.max(ReevalChangeRow.id))).scalar_one()
        return int(value or 0)

    def prune(self, *, older_than: float) -> int:
        """Delete finished jobs and change log entries older than `older_than` seconds.

        Raises:
            ReevalError: the delete failed.
        """
        cutoff = self._clock() - timedelta(seconds=older_than)
        with self._write("prune") as connection:
            jobs = connection.execute(
                delete(ReevalJobRow)
                .where(
                    ReevalJobRow.state.in_((str(JobState.DONE), str(JobState.FAILED))),
                    ReevalJobRow.finished_at < cutoff,
                )
                .returning(ReevalJobRow.id)
            ).all()
            changes = connection.execute(
                delete(ReevalChangeRow)
                .where(ReevalChangeRow.time < cutoff)
                .returning(ReevalChangeRow.id)
            ).all()
        return len(jobs) + len(changes)


def _set_state(connection: Connection, key: str, value: str, now: datetime) -> None:
    updated = connection.execute(
        update(ReevalStateRow)
        .where(ReevalStateRow.key == key)
        .values(value=value, updated_at=now)
        .returning(ReevalStateRow.key)
    ).first()
    if updated is None:
        connection.execute(insert(ReevalStateRow).values(key=key, value=value, updated_at=now))


def _job(row: Any) -> Job:
    return Job(
        id=row.id,
        kind=JobKind(row.kind),
        state=JobState(row.state),
        feed_revision=row.feed_revision,
        previous_revision=row.previous_revision,
        keys=frozenset((str(key[0]), str(key[1])) for key in row.keys),
        cursor=row.cursor,
        processed=row.processed,
        changed=row.changed,
        attempts=row.attempts,
        created_at=row.created_at,
        error=row.error,
    )


def _first_line(exc: SQLAlchemyError) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause)
    return text.splitlines()[0] if text else type(cause).__name__
