"""SQLAlchemy declarative models of the store's tables.

Other packages add their tables on the same `Base`, and ship an Alembic migration for them in
`regward/store/migrations/versions/`. The models describe the schema that the latest migration
creates; `tests/integration/store` checks that they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Constraint names follow this convention so that later migrations can refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AUDIT_ACTIONS = ("pull", "push", "delete")
"""Values allowed in `audit_log.action`."""

AUDIT_DECISIONS = ("allow", "deny", "warn", "audit", "error")
"""Values allowed in `audit_log.decision`."""


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored in UTC and always returned with `tzinfo=UTC`.

    SQLite has no timestamp type, so values are stored there as naive UTC text in a fixed
    format, which sorts in time order. Naive datetimes are rejected on write.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert `value` to UTC; SQLite gets it without tzinfo."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"expected a timezone-aware datetime, got naive {value.isoformat()}")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return `value` in UTC, reading a naive value as UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every regward table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{value}'" for value in values)


# SQLite assigns row ids only to a column declared exactly INTEGER PRIMARY KEY.
_ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
_JSON = JSON().with_variant(JSONB(), "postgresql")


class AuditLogEntry(Base):
    """One row of `audit_log`: a pull, push or delete and what the gate decided."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(f"action IN ({_sql_list(AUDIT_ACTIONS)})", name="action"),
        CheckConstraint(f"decision IN ({_sql_list(AUDIT_DECISIONS)})", name="decision"),
        Index("ix_audit_log_repository_time", "repository", "time"),
        Index("ix_audit_log_digest", "digest"),
    )

    id: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime())
    request_id: Mapped[str | None] = mapped_column(Text)
    client_address: Mapped[str | None] = mapped_column(Text)
    identity: Mapped[str | None] = mapped_column(Text)
    """Authenticated subject of the request, None for anonymous requests."""

    action: Mapped[str] = mapped_column(String(16))
    repository: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    """Tag or digest as the client sent it."""

    digest: Mapped[str | None] = mapped_column(Text)
    """Manifest digest the reference resolved to, None when resolution failed."""

    decision: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str | None] = mapped_column(Text)
    reasons: Mapped[list[str]] = mapped_column(_JSON)
    """JSON list of reason messages."""

    policy_revision: Mapped[str | None] = mapped_column(Text)


class TagClaim(Base):
    """One row of `tag_claims`: the digest an immutable tag was first pushed with."""

    __tablename__ = "tag_claims"

    repository: Mapped[str] = mapped_column(Text, primary_key=True)
    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    digest: Mapped[str] = mapped_column(Text)
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime())
