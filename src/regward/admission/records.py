"""Deployment records: which image digest each admitted workload container ran, and when.

A record is written for every container of a workload that the validating webhook admits
(dry-run requests excepted). It is current from `admitted_at` until `ended_at`: a later
admission of the same workload ends the records of containers whose image or digest changed
or that disappeared, and a DELETE of the workload ends all of them. `list_at(time)` returns
the records that were current at that time, the starting point for "what ran during the
incident".

Pods owned by a controller are not recorded, because their workload already is; pods without
an owner are recorded like any workload.

Times are stored in UTC. SQLite keeps no time zone, so every value is converted to UTC before
it is written and read back as UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from regward.admission.interface import AdmittedContainer, RecordsError
from regward.store.db import SQLITE_BEGIN_IMMEDIATE
from regward.store.models import Base, UtcDateTime

logger = logging.getLogger(__name__)


class DeploymentRow(Base):
    """One container of one admitted workload, as stored in the `deployments` table."""

    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_workload", "namespace", "kind", "name", "ended_at"),
        Index("ix_deployments_admitted_at", "admitted_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    namespace: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(Text)
    container: Mapped[str] = mapped_column(Text)
    container_list: Mapped[str] = mapped_column(String(32))
    """`containers`, `initContainers` or `ephemeralContainers`."""

    image: Mapped[str] = mapped_column(Text)
    """The image reference as the object spells it."""

    digest: Mapped[str | None] = mapped_column(Text)
    """The digest the admission decision was about; None when it is not known."""

    admitted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    """When a later admission or a DELETE ended the record; None while it is current."""

    request_uid: Mapped[str] = mapped_column(Text)
    """The `uid` of the AdmissionReview that admitted the container."""


@dataclass(frozen=True)
class DeploymentRecord:
    """A stored deployment record."""

    namespace: str
    kind: str
    name: str
    container: str
    container_list: str
    image: str
    digest: str | None
    admitted_at: datetime
    """When the admission was recorded, in UTC."""

    ended_at: datetime | None
    """When a later admission or a DELETE ended the record, in UTC; None while current."""

    request_uid: str
    """The `uid` of the AdmissionReview that admitted the container."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Return `value` in UTC; a naive value is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _record_of(row: DeploymentRow) -> DeploymentRecord:
    return DeploymentRecord(
        namespace=row.namespace,
        kind=row.kind,
        name=row.name,
        container=row.container,
        container_list=row.container_list,
        image=row.image,
        digest=row.digest,
        admitted_at=as_utc(row.admitted_at),
        ended_at=as_utc(row.ended_at) if row.ended_at is not None else None,
        request_uid=row.request_uid,
    )


class DeploymentRecorder:
    """Writes and reads deployment records through a SQLAlchemy engine.

    The methods block on the database; async callers run them in a worker thread.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self.engine = engine
        # Writes read the current records first, so on SQLite they take the write lock up
        # front rather than fail when another writer commits in between.
        self._write_engine = engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
        self._clock = clock

    def record(
        self,
        namespace: str,
        kind: str,
        name: str,
        containers: Sequence[AdmittedContainer],
        *,
        request_uid: str,
        at: datetime | None = None,
    ) -> None:
        """Make `containers` the current containers of the workload `namespace/kind/name`.

        A container whose image and digest are unchanged keeps its record. Any other current
        record of the workload ends at `at`, and a new record starts at `at` for each changed
        or new container.

        Raises:
            RecordsError: the database write failed.
        """
        moment = as_utc(at if at is not None else self._clock())
        try:
            with Session(self._write_engine) as session, session.begin():
                current = session.scalars(
                    select(DeploymentRow).where(
                        DeploymentRow.namespace == namespace,
                        DeploymentRow.kind == kind,
                        DeploymentRow.name == name,
                        DeploymentRow.ended_at.is_(None),
                    )
                ).all()
                by_container = {(row.container_list, row.container): row for row in current}
                kept: set[int] = set()
                for container in containers:
                    row = by_container.get((container.container_list, container.container))
                    if (
                        row is not None
                        and row.image == container.image
                        and row.digest == container.digest
                    ):
                        kept.add(row.id)
                        continue
                    session.add(
                        DeploymentRow(
                            namespace=namespace,
                            kind=kind,
                            name=name,
                            container=container.container,
                            container_list=container.container_list,
                            image=container.image,
                            digest=container.digest,
                            admitted_at=moment,
                            ended_at=None,
                            request_uid=request_uid,
                        )
                    )
                for row in current:
                    if row.id not in kept:
                        row.ended_at = moment
        except SQLAlchemyError as exc:
            raise RecordsError(
                f"recording deployment {namespace}/{kind}/{name} failed: {exc}"
            ) from exc
        logger.debug(
            "recorded %d containers of %s/%s/%s (%d unchanged)",
            len(containers),
            namespace,
            kind,
            name,
            len(kept),
        )

    def end(self, namespace: str, kind: str, name: str, *, at: datetime | None = None) -> int:
        """End every current record of the workload `namespace/kind/name`.

        Raises:
            RecordsError: the database write failed.

        Returns:
            The number of records ended.
        """
        moment = as_utc(at if at is not None else self._clock())
        try:
            with Session(self._write_engine) as session, session.begin():
                rows = session.scalars(
                    select(DeploymentRow).where(
                        DeploymentRow.namespace == namespace,
                        DeploymentRow.kind == kind,
                        DeploymentRow.name == name,
                        DeploymentRow.ended_at.is_(None),
                    )
                ).all()
                for row in rows:
                    row.ended_at = moment
        except SQLAlchemyError as exc:
            raise RecordsError(
                f"ending deployment records of {namespace}/{kind}/{name} failed: {exc}"
            ) from exc
        logger.debug("ended %d records of %s/%s/%s", len(rows), namespace, kind, name)
        return len(rows)

    def list_at(self, at: datetime, namespace: str | None = None) -> list[DeploymentRecord]:
        """Return the records that were current at `at`, optionally in one namespace.

        A record is current at `at` when it was admitted at or before `at` and had not ended
        by then. The list is sorted by namespace, kind, name and container.

        Raises:
            RecordsError: the database read failed, for example because the `deployments`
                table does not exist yet.
        """
        moment = as_utc(at)
        query = select(DeploymentRow).where(
            DeploymentRow.admitted_at <= moment,
            (DeploymentRow.ended_at.is_(None)) | (DeploymentRow.ended_at > moment),
        )
        if namespace is not None:
            query = query.where(DeploymentRow.namespace == namespace)
        query = query.order_by(
            DeploymentRow.namespace,
            DeploymentRow.kind,
            DeploymentRow.name,
            DeploymentRow.container_list,
            DeploymentRow.container,
            DeploymentRow.admitted_at,
        )
        try:
            with Session(self.engine) as session:
                return [_record_of(row) for row in session.scalars(query)]
        except SQLAlchemyError as exc:
            if not self._has_table():
                raise RecordsError(
                    "the database has no deployments table: run `regward serve` with this "
                    "database once, which applies the migrations"
                ) from exc
            raise RecordsError(f"reading deployment records failed: {exc}") from exc

    def _has_table(self) -> bool:
        try:
            return inspect(self.engine).has_table(DeploymentRow.__tablename__)
        except SQLAlchemyError:
            logger.debug("cannot inspect the database for the deployments table", exc_info=True)
            return True
