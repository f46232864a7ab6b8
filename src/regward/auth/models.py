"""SQLAlchemy model of the `static_tokens` table, created by store migration 0002.

The table has one row per static token with its scope, its expiry and the SHA-256 of its secret,
never the secret itself.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from regward.store.models import Base, UtcDateTime

_JSON = JSON().with_variant(JSONB(), "postgresql")


class StaticTokenRow(Base):
    """One static token; the secret is stored only as a hash."""

    __tablename__ = "static_tokens"

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    """12 lower-case hex digits, the `<id>` in `rgw_<id>_<secret>`."""
    description: Mapped[str] = mapped_column(Text)
    repositories: Mapped[list[str]] = mapped_column(_JSON)
    """JSON list of repository names or globs."""
    actions: Mapped[list[str]] = mapped_column(_JSON)
    """JSON list of `pull`, `push`, `delete`."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_used_address: Mapped[str | None] = mapped_column(Text)
    secret_hash: Mapped[str] = mapped_column(String(64))
    """Hex SHA-256 of `<id>:<secret>`."""
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64))
    """Hash of the secret before the last rotation, valid until `previous_valid_until`."""
    previous_valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
