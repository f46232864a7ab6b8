"""Notification events and their webhook deliveries in the store.

An event is written once with one delivery row per receiver, in one transaction. A delivery is
`pending` until a POST succeeds (`delivered`) or the last attempt fails (`dead`, the dead-letter
record, which keeps the last status and error).

Dispatchers take due deliveries with a lease: until it expires, no other dispatcher (such as
another gate replica on the same PostgreSQL) takes them, so each attempt is made once. A
dispatcher that crashes during a POST leaves the lease to expire, and the delivery is attempted
again.

Methods block on the database; async callers run them in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from regward.notify.interface import Event, NotifyError
from regward.store.db import SQLITE_BEGIN_IMMEDIATE
from regward.store.models import Base, UtcDateTime

logger = logging.getLogger(__name__)

_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
_JSON = JSON().with_variant(JSONB(), "postgresql")
MAX_ERROR_LENGTH = 500
"""Characters of an error message kept on a delivery row."""


class DeliveryState(StrEnum):
    """The state of a delivery."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    """Every attempt failed; the row is the dead-letter record."""


class NotificationEventRow(Base):
    """One row of `notification_events`."""

    __tablename__ = "notification_events"
    __table_args__ = (Index("ix_notification_events_digest", "digest"),)

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    """The event's public id, sent in the body."""
    type: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(UtcDateTime())
    repository: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(_JSON)
    """The JSON document POSTed to receivers."""


class WebhookDeliveryRow(Base):
    """One row of `webhook_deliveries`: one event for one receiver."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'delivered', 'dead')", name="state"),
        Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
    )

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        _ROW_ID, ForeignKey("notification_events.id", ondelete="CASCADE")
    )
    webhook: Mapped[str] = mapped_column(Text)
    """The receiver's name (`WebhookTarget.name`), never its URL."""
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)
    """HTTP status of the last attempt, None when no response arrived."""
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    """When the delivery succeeded or became a dead letter."""


@dataclass(frozen=True)
class Delivery:
    """A delivery as the dispatcher and reports see it."""

    id: int
    event_id: str
    event_type: str
    webhook: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    payload: dict[str, Any]
    last_status: int | None = None
    last_error: str | None = None
    finished_at: datetime | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class NotificationStore:
    """Records events and tracks their deliveries through a SQLAlchemy engine."""

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
            logger.debug("notification store %s failed", operation, exc_info=True)
            raise NotifyError(f"{operation} failed: {_first_line(exc)}") from exc

    def record(self, event: Event, webhooks: Sequence[str]) -> int:
        """Store `event` with a pending delivery for each receiver name; return the event row id.

        Raises:
            NotifyError: the database failed; nothing was written.
        """
        now = self._clock()
        with self._write("record event") as connection:
            row_id = connection.execute(
                insert(NotificationEventRow)
                .values(
                    event_id=event.id,
                    type=str(event.type),
                    time=event.time,
                    repository=event.repository,
                    digest=event.digest,
                    payload=event.to_json(),
                )
                .returning(NotificationEventRow.id)
            ).scalar_one()
            if webhooks:
                connection.execute(
                    insert(WebhookDeliveryRow),
                    [
                        {
                            "event_id": row_id,
                            "webhook": name,
                            "state": str(DeliveryState.PENDING),
                            "attempts": 0,
                            "next_attempt_at": now,
                        }
                        for name in webhooks
                    ],
                )
        logger.debug(
            "recorded event %s (%s) for %s@%s with %d deliveries",
            event.id,
            event.type,
            event.repository,
            event.digest,
            len(webhooks),
        )
        return int(row_id)

    def claim_due(self, *, limit: int, lease: float) -> list[Delivery]:
        """Take up to `limit` pending deliveries that are due and not leased, leasing them.

        Args:
            limit: the maximum number of deliveries to return.
            lease: seconds during which no other dispatcher takes them.

        Raises:
            NotifyError: the database failed.
        """
        now = self._clock()
        until = now + timedelta(seconds=lease)
        due = (
            select(WebhookDeliveryRow.id)
            .where(
                WebhookDeliveryRow.state == str(DeliveryState.PENDING),
                WebhookDeliveryRow.next_attempt_at <= now,
                or_(WebhookDeliveryRow.lease_until.is_(None), WebhookDeliveryRow.lease_until < now),
            )
            .order_by(WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.id)
            .limit(limit)
        )
        claimed: list[int] = []
        with self._write("claim deliveries") as connection:
            for delivery_id in connection.execute(due).scalars().all():
                # The conditions are checked again, so that of two dispatchers only one wins.
                taken = connection.execute(
                    update(WebhookDeliveryRow)
                    .where(
                        WebhookDeliveryRow.id == delivery_id,
                        WebhookDeliveryRow.state == str(DeliveryState.PENDING),
                        or_(
                            WebhookDeliveryRow.lease_until.is_(None),
                            WebhookDeliveryRow.lease_until < now,
                        ),
                    )
                    .values(lease_until=until)
                    .returning(WebhookDeliveryRow.id)
                ).first()
                if taken is not None:
                    claimed.append(delivery_id)
            rows = connection.execute(
                self._query()
                .where(WebhookDeliveryRow.id.in_(claimed))
                .order_by(WebhookDeliveryRow.id)
            )
            return [_delivery(row) for row in rows]

    def mark_delivered(self, delivery_id: int, status: int) -> None:
        """Record a successful attempt.

        Raises:
            NotifyError: the database failed.
        """
        now = self._clock()
        with self._write("mark delivery") as connection:
            connection.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == delivery_id)
                .values(
                    state=str(DeliveryState.DELIVERED),
                    attempts=WebhookDeliveryRow.attempts + 1,
                    last_status=status,
                    last_error=None,
                    lease_until=None,
                    finished_at=now,
                )
            )

    def mark_failed(
        self, delivery_id: int, *, status: int | None, error: str, retry_in: float | None
    ) -> None:
        """Record a failed attempt: retry after `retry_in` seconds, or keep a dead letter if None.

        Raises:
            NotifyError: the database failed.
        """
        now = self._clock()
        values: dict[str, Any] = {
            "attempts": WebhookDeliveryRow.attempts + 1,
            "last_status": status,
            "last_error": error[:MAX_ERROR_LENGTH],
            "lease_until": None,
        }
        if retry_in is None:
            values.update(state=str(DeliveryState.DEAD), finished_at=now)
        else:
            values.update(next_attempt_at=now + timedelta(seconds=retry_in))
        with self._write("mark delivery") as connection:
            connection.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == delivery_id)
                .values(values)
            )

    def deliveries(
        self,
        *,
        state: DeliveryState | None = None,
        digest: str | None = None,
        limit: int = 1000,
    ) -> list[Delivery]:
        """Return deliveries, oldest first, optionally only in `state` or for one digest.

        `deliveries(state=DeliveryState.DEAD)` lists the dead letters.

        Raises:
            NotifyError: the query failed.
        """
        query = self._query()
        if state is not None:
            query = query.where(WebhookDeliveryRow.state == str(state))
        if digest is not None:
            query = query.where(NotificationEventRow.digest == digest)
        query = query.order_by(WebhookDeliveryRow.id).limit(limit)
        try:
            with self.engine.connect() as connection:
                return [_delivery(row) for row in connection.execute(query)]
        except SQLAlchemyError as exc:
            raise NotifyError(f"list deliveries failed: {_first_line(exc)}") from exc

    def events(self, *, digest: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Return stored event documents, oldest first.

        Raises:
            NotifyError: the query failed.
        """
        query = select(NotificationEventRow.payload).order_by(NotificationEventRow.id)
        if digest is not None:
            query = query.where(NotificationEventRow.digest == digest)
        try:
            with self.engine.connect() as connection:
                return [
                    dict(payload) for payload in connection.execute(query.limit(limit)).scalars()
                ]
        except SQLAlchemyError as exc:
            raise NotifyError(f"list events failed: {_first_line(exc)}") from exc

    @staticmethod
    def _query() -> Any:
        return select(
            WebhookDeliveryRow.id,
            NotificationEventRow.event_id,
            NotificationEventRow.type,
            WebhookDeliveryRow.webhook,
            WebhookDeliveryRow.state,
            WebhookDeliveryRow.attempts,
            WebhookDeliveryRow.next_attempt_at,
            NotificationEventRow.payload,
            WebhookDeliveryRow.last_status,
            WebhookDeliveryRow.last_error,
            WebhookDeliveryRow.finished_at,
        ).join(NotificationEventRow, NotificationEventRow.id == WebhookDeliveryRow.event_id)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=row.event_id,
        event_type=row.type,
        webhook=row.webhook,
        state=DeliveryState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        payload=dict(row.payload),
        last_status=row.last_status,
        last_error=row.last_error,
        finished_at=row.finished_at,
    )


def _first_line(exc: SQLAlchemyError) -> str:
    cause = getattr(exc, "orig", None) or exc
    text = str(cause)
    return text.splitlines()[0] if text else type(cause).__name__
