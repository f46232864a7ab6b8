"""The store: audit records and tag claims in SQLite or PostgreSQL.

`Store` methods block, and one instance is safe to share between threads; async code calls
them through `asyncio.to_thread`. Every method raises `StoreError`, never a SQLAlchemy error.

SQLite runs in WAL mode, so readers do not block the writer, and with a busy timeout, so
writers wait for each other instead of failing. Write transactions start with
`BEGIN IMMEDIATE`, which takes the write lock up front and makes each one atomic against
other processes using the same file. PostgreSQL is reached through psycopg 3.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from threading import RLock
from types import TracebackType
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, create_engine, delete, event, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from regward.store.errors import StoreError
from regward.store.models import AuditLogEntry, TagClaim

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
"""Folder of the Alembic environment and its `versions/`."""

MAX_AUDIT_LIMIT = 10_000
"""Largest `limit` accepted by `Store.list_audit`."""

# Key of the PostgreSQL advisory lock that serialises migrations of one database; the
# bytes spell "regward".
_MIGRATION_LOCK_KEY = 0x72656777617264

SQLITE_BEGIN_IMMEDIATE = "regward_sqlite_immediate"
"""Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE.

Code that writes through `Store.engine` should set it, as in
`engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})`: a deferred transaction that
reads before it writes fails at once with "database is locked" when another connection wrote
in between, while an immediate one waits up to the busy timeout."""

# How often claim_tag retries when a claim it collided with is released before it could
# read the claim's digest.
_CLAIM_ATTEMPTS = 5


class AuditAction(StrEnum):
    """The request an audit record describes."""

    PULL = "pull"
    PUSH = "push"
    DELETE = "delete"


class AuditDecision(StrEnum):
    """Outcome recorded for a request: a verdict, an unenforced denial or an error."""

    ALLOW = "allow"
    DENY = "deny"
    WARN = "warn"
    AUDIT = "audit"
    ERROR = "error"


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One audit log entry, as written by the gate and returned by `Store.list_audit`.

    Fields mirror the columns of `audit_log`. `time` must be timezone-aware. `action` and
    `decision` accept plain strings and are stored as `AuditAction` and `AuditDecision`
    members; `reasons` accepts any sequence and is stored as a tuple.
    """

    id: int | None = None
    """Row id assigned by the database; ignored by `Store.record`."""

    time: datetime
    request_id: str | None = None
    client_address: str | None = None
    identity: str | None = None
    action: str
    """An `AuditAction` value."""

    repository: str
    reference: str | None = None
    digest: str | None = None
    decision: str
    """An `AuditDecision` value."""

    rule: str | None = None
    reasons: Sequence[str] = ()
    """Reason messages; a tuple after construction."""

    policy_revision: str | None = None

    def __post_init__(self) -> None:
        """Check the time zone and the enum values, converting plain strings to enums.

        Raises:
            StoreError: naive time, unknown action or decision, or a reason that is not a string.
        """
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise StoreError(
                f"audit record time must be timezone-aware, got naive {self.time.isoformat()}"
            )
        try:
            action = AuditAction(self.action)
        except ValueError as exc:
            raise StoreError(
                f"invalid audit action {self.action!r}: expected one of {', '.join(AuditAction)}"
            ) from exc
        try:
            decision = AuditDecision(self.decision)
        except ValueError as exc:
            raise StoreError(
                f"invalid audit decision {self.decision!r}: expected one of "
                f"{', '.join(AuditDecision)}"
            ) from exc
        if isinstance(self.reasons, str | bytes):
            raise StoreError("audit reasons must be a sequence of strings, got a single string")
        reasons = tuple(self.reasons)
        for reason in reasons:
            if not isinstance(reason, str):
                raise StoreError(f"audit reasons must be strings, got {type(reason).__name__}")
        # The dataclass is frozen, so normalised values go in through object.__setattr__.
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "decision", decision)
        object.__setattr__(self, "reasons", reasons)


def normalize_database_url(url: str) -> URL:
    """Parse a database URL and select the driver regward uses for it.

    Accepted: `sqlite:///path`, `sqlite://` (in memory), `postgresql://…` and `postgres://…`,
    with or without the explicit drivers `+pysqlite` and `+psycopg`. PostgreSQL URLs are mapped
    to psycopg 3 (`postgresql+psycopg://`).

    Raises:
        StoreError: the URL cannot be parsed or names another database or driver. The message
            does not repeat the URL, which may contain a password.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(
            "invalid database URL: expected sqlite:///path, sqlite:// or "
            "postgresql://user@host/database"
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise StoreError(
        f"unsupported database URL scheme {parsed.drivername!r}: expected sqlite or postgresql"
    )


class Store:
    """Persistence of audit records and tag claims.

    Call `migrate()` once at start-up before any other method; it is idempotent.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int = 10,
        busy_timeout: float = 30.0,
    ) -> None:
        """Create the engine for `url`; no connection is opened yet.

        Args:
            url: database URL, see `normalize_database_url`.
            pool_size: connections kept open (file SQLite and PostgreSQL).
            max_overflow: extra connections opened under load beyond `pool_size`.
            busy_timeout: seconds a SQLite writer waits for the write lock, and a
                PostgreSQL connection attempt waits for the server.

        Raises:
            StoreError: the URL is invalid or unsupported.
        """
        self._url = normalize_database_url(url)
        self.safe_url = self._url.render_as_string(hide_password=True)
        """The database URL with the password masked, for logs and messages."""

        self._dialect = self._url.get_backend_name()
        self._memory = self._dialect == "sqlite" and self._url.database in (None, "", ":memory:")
        # One in-memory SQLite database lives in one connection, which threads must not use
        # concurrently, so every operation on it holds this lock.
        self._lock: AbstractContextManager[Any] = RLock() if self._memory else nullcontext()
        self._engine = self._create_engine(pool_size, max_overflow, busy_timeout)
        logger.info("store uses %s", self.safe_url)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for packages that keep their own tables on `Base`.

        On SQLite each transaction from it starts with BEGIN (deferred) unless the execution
        option `SQLITE_BEGIN_IMMEDIATE` is set. An in-memory SQLite store serialises its own
        methods with a lock that code using the engine directly does not take.
        """
        return self._engine

    def __repr__(self) -> str:
        return f"Store({self.safe_url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _create_engine(self, pool_size: int, max_overflow: int, busy_timeout: float) -> Engine:
        if self._dialect == "postgresql":
            return create_engine(
                self._url,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_pre_ping=True,
                pool_recycle=1800,
                connect_args={"connect_timeout": max(1, round(busy_timeout))},
            )

        if self._memory:
            engine = create_engine(
                self._url,
                poolclass=StaticPool,
                connect_args={"check_same_thread": False},
            )
        else:
            engine = create_engine(
                self._url,
                pool_size=pool_size,
                max_overflow=max_overflow,
                connect_args={"check_same_thread": False, "timeout": busy_timeout},
            )
        _configure_sqlite(engine, busy_timeout_ms=round(busy_timeout * 1000), wal=not self._memory)
        return engine

    # --- transactions and errors ------------------------------------------------------------

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            detail = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
            logger.debug("store %s failed on %s", operation, self.safe_url, exc_info=True)
            raise StoreError(f"{operation} failed on {self.safe_url}: {detail}") from exc

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """Open a write transaction that commits on success and rolls back on error."""
        with self._lock, self._engine.connect() as connection:
            if self._dialect == "sqlite":
                connection.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
            with connection.begin():
                yield connection

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._lock, Session(self._engine) as session:
            yield session

    # --- schema -----------------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest Alembic revision.

        Safe to call at every start and from several processes at once: PostgreSQL takes an
        advisory lock and SQLite the write lock before Alembic reads the current revision, and
        the whole upgrade runs in that one transaction.

        Raises:
            StoreError: the database is unreachable or a migration failed.
        """
        config = Config()
        # Config values go through ConfigParser interpolation, which treats '%' specially.
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        config.set_main_option("path_separator", "os")
        try:
            with self._write() as connection:
                if self._dialect == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                    )
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except Exception as exc:
            # Migration modules are code loaded from files: besides database errors, a broken
            # revision chain surfaces as alembic's CommandError or as a KeyError.
            logger.debug("migration of %s failed", self.safe_url, exc_info=True)
            cause = getattr(exc, "orig", None) or exc
            detail = str(cause).splitlines()[0] if str(cause) else ""
            raise StoreError(
                f"migrate failed on {self.safe_url}: {type(cause).__name__}: {detail}"
            ) from exc
        logger.info("store schema of %s is at the newest revision", self.safe_url)

    # --- audit log --------------------------------------------------------------------------

    def record(self, records: Sequence[AuditRecord]) -> None:
        """Insert `records` into the audit log in one transaction.

        Raises:
            StoreError: the insert failed; none of the records were written.
        """
        if not records:
            return
        rows = [
            {
                "time": record.time,
                "request_id": record.request_id,
                "client_address": record.client_address,
                "identity": record.identity,
                "action": str(record.action),
                "repository": record.repository,
                "reference": record.reference,
                "digest": record.digest,
                "decision": str(record.decision),
                "rule": record.rule,
                "reasons": list(record.reasons),
                "policy_revision": record.policy_revision,
            }
            for record in records
        ]
        with self._errors("record audit"), self._write() as connection:
            connection.execute(insert(AuditLogEntry), rows)

    def list_audit(
        self,
        *,
        repository: str | None = None,
        digest: str | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Return up to `limit` audit records, newest first, optionally filtered.

        Records with the same time come in reverse insertion order.

        Raises:
            StoreError: `limit` is outside 1..MAX_AUDIT_LIMIT, or the query failed.
        """
        if not 1 <= limit <= MAX_AUDIT_LIMIT:
            raise StoreError(f"audit limit must be between 1 and {MAX_AUDIT_LIMIT}, got {limit}")
        query = select(AuditLogEntry)
        if repository is not None:
            query = query.where(AuditLogEntry.repository == repository)
        if digest is not None:
            query = query.where(AuditLogEntry.digest == digest)
        query = query.order_by(AuditLogEntry.time.desc(), AuditLogEntry.id.desc()).limit(limit)
        with self._errors("list audit"), self._read() as session:
            return [_to_record(row) for row in session.scalars(query)]

    # --- tag claims -------------------------------------------------------------------------

    def claim_tag(self, repository: str, tag: str, digest: str) -> str | None:
        """Claim `repository:tag` for `digest` unless someone claimed it before.

        Returns None when this call created the claim. Otherwise returns the digest stored
        by the existing claim, which may equal `digest`; the caller compares. Concurrent
        calls for the same tag are serialised by the primary key, so exactly one of them
        returns None.

        Raises:
            StoreError: the database failed.
        """
        claim = {
            "repository": repository,
            "tag": tag,
            "digest": digest,
            "claimed_at": datetime.now(UTC),
        }
        insert_claim = (
            postgresql.insert(TagClaim)
            if self._dialect == "postgresql"
            else sqlite.insert(TagClaim)
        )
        # RETURNING yields a row only when the insert happened; psycopg reports no rowcount
        # for this statement.
        statement = (
            insert_claim.values(claim)
            .on_conflict_do_nothing(index_elements=["repository", "tag"])
            .returning(TagClaim.digest)
        )
        lookup = select(TagClaim.digest).where(
            TagClaim.repository == repository, TagClaim.tag == tag
        )
        for _attempt in range(_CLAIM_ATTEMPTS):
            with self._errors("claim tag"), self._write() as connection:
                if connection.execute(statement).first() is not None:
                    logger.debug("claimed %s:%s for %s", repository, tag, digest)
                    return None
                stored = connection.execute(lookup).scalar_one_or_none()
            if stored is not None:
                return stored
            # The claim that blocked the insert was released before the lookup; try again.
        raise StoreError(
            f"claim tag failed on {self.safe_url}: the claim of {repository}:{tag} was "
            f"released and re-created {_CLAIM_ATTEMPTS} times during the attempt"
        )

    def get_tag_claim(self, repository: str, tag: str) -> str | None:
        """Return the digest that claims `repository:tag`, or None when it is unclaimed.

        Raises:
            StoreError: the query failed.
        """
        lookup = select(TagClaim.digest).where(
            TagClaim.repository == repository, TagClaim.tag == tag
        )
        with self._errors("get tag claim"), self._read() as session:
            return session.execute(lookup).scalar_one_or_none()

    def release_tag(self, repository: str, tag: str, digest: str) -> None:
        """Delete the claim of `repository:tag` if it stores `digest`; otherwise do nothing.

        Raises:
            StoreError: the delete failed.
        """
        statement = (
            delete(TagClaim)
            .where(
                TagClaim.repository == repository, TagClaim.tag == tag, TagClaim.digest == digest
            )
            .returning(TagClaim.tag)
        )
        with self._errors("release tag"), self._write() as connection:
            released = len(connection.execute(statement).all())
        logger.debug("release of %s:%s for %s removed %d claims", repository, tag, digest, released)

    def close(self) -> None:
        """Close every pooled connection; safe to call more than once."""
        self._engine.dispose()


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int, wal: bool) -> None:
    """Install the hooks that give SQLite connections WAL, a busy timeout and real BEGINs."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Python's sqlite3 module (before 3.12) only emits BEGIN before DML, which would leave
        # DDL and reads outside the transaction. Autocommit mode here plus the "begin" hook
        # below make SQLAlchemy's transactions real SQLite transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            if wal:
                _enable_wal(cursor, timeout=busy_timeout_ms / 1000)
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(SQLITE_BEGIN_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _enable_wal(cursor: sqlite3.Cursor, *, timeout: float) -> None:
    """Switch the database file to WAL mode, retrying while another connection locks it.

    SQLite returns "database is locked" for this pragma without calling the busy handler when
    another connection holds a lock, which happens when two processes open a new file at once.
    The mode is stored in the file, so only the first connections to a new file can collide.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            logger.debug("switching to WAL mode: %s, retrying in %.3f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _to_record(row: AuditLogEntry) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        time=row.time,
        request_id=row.request_id,
        client_address=row.client_address,
        identity=row.identity,
        action=AuditAction(row.action),
        repository=row.repository,
        reference=row.reference,
        digest=row.digest,
        decision=AuditDecision(row.decision),
        rule=row.rule,
        reasons=tuple(row.reasons),
        policy_revision=row.policy_revision,
    )
