"""Persistence of regward's state in SQLite or PostgreSQL, with Alembic migrations.

`Store` is the entry point. Tables are SQLAlchemy models on `Base`; the migrations that
create them ship in `regward/store/migrations/`.
"""

from __future__ import annotations

from regward.store.db import (
    MAX_AUDIT_LIMIT,
    SQLITE_BEGIN_IMMEDIATE,
    AuditAction,
    AuditDecision,
    AuditRecord,
    Store,
    normalize_database_url,
)
from regward.store.errors import StoreError
from regward.store.models import AuditLogEntry, Base, TagClaim, UtcDateTime

__all__ = [
    "MAX_AUDIT_LIMIT",
    "SQLITE_BEGIN_IMMEDIATE",
    "AuditAction",
    "AuditDecision",
    "AuditLogEntry",
    "AuditRecord",
    "Base",
    "Store",
    "StoreError",
    "TagClaim",
    "UtcDateTime",
    "normalize_database_url",
]
