"""Static scoped tokens for pipelines that cannot use OIDC: create, list, revoke, rotate, verify.

A token reads `rgw_<id>_<secret>`: the `rgw_` prefix lets secret scanners find leaked tokens, `<id>`
is 12 hex digits shown by `regward token list`, and `<secret>` is 64 hex digits (256 random bits).
The database keeps only SHA-256 of `<id>:<secret>`. A slow password hash is not needed because the
secret is random, not chosen by a person. Every token has an expiry. Rotation replaces the secret
and keeps the old one valid for a short overlap, so a pipeline can switch without failed pulls.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from regward.auth.errors import AuthenticationError, TokenStoreError
from regward.auth.grants import Grant, Identity, IdentityKind
from regward.auth.models import StaticTokenRow
from regward.auth.scope import Action
from regward.policy.errors import PatternError
from regward.policy.match import check_repository_pattern
from regward.store.db import SQLITE_BEGIN_IMMEDIATE

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "rgw_"  # noqa: S105 - the public prefix, not a secret
_TOKEN_FORM = re.compile(r"rgw_([0-9a-f]{12})_([0-9a-f]{64})")
LAST_USE_INTERVAL = 60.0
"""Seconds between two writes of a token's last use, so busy pipelines do not write on each pull."""


@dataclass(frozen=True)
class StaticToken:
    """A static token as `regward token list` shows it: everything but the secret."""

    id: str
    description: str
    repositories: tuple[str, ...]
    """Repository names or globs the token covers."""
    actions: tuple[Action, ...]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_address: str | None
    rotated_at: datetime | None
    previous_valid_until: datetime | None
    """End of the overlap in which the secret before the last rotation still works."""

    def status(self, now: datetime) -> str:
        """Return `active`, `expired` or `revoked`."""
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        return "active"

    def identity(self) -> Identity:
        """Return the identity this token authenticates as."""
        return Identity(
            name=f"token:{self.id}",
            kind=IdentityKind.STATIC,
            grants=(Grant(repositories=self.repositories, actions=frozenset(self.actions)),),
            expires=self.expires_at.timestamp(),
            token_id=self.id,
        )


@dataclass(frozen=True)
class IssuedStaticToken:
    """A token just created or rotated: its record and the secret, shown once."""

    token: StaticToken
    secret: str
    """The full `rgw_…` string to give to the pipeline."""


def _hash(token_id: str, secret: str) -> str:
    return hashlib.sha256(f"{token_id}:{secret}".encode()).hexdigest()


def _to_token(row: StaticTokenRow) -> StaticToken:
    return StaticToken(
        id=row.id,
        description=row.description,
        repositories=tuple(row.repositories),
        actions=tuple(Action(a) for a in row.actions),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        last_used_address=row.last_used_address,
        rotated_at=row.rotated_at,
        previous_valid_until=row.previous_valid_until,
    )


def parse_token(text: str) -> tuple[str, str] | None:
    """Split `rgw_<id>_<secret>` into id and secret, or return None when it has another form."""
    match = _TOKEN_FORM.fullmatch(text)
    return None if match is None else (match.group(1), match.group(2))


def is_static_token(text: str) -> bool:
    """Return whether `text` starts with the static token prefix."""
    return text.startswith(TOKEN_PREFIX)


class StaticTokenStore:
    """Static tokens in the `static_tokens` table of the regward database.

    Each write is one INSERT or one conditional UPDATE, so concurrent changes to one token cannot
    interleave: a rotation only applies if the secret it replaces is still current.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_lifetime: float,
        rotation_overlap: float,
        clock: Callable[[], float],
    ) -> None:
        """Use the table through `engine`, which must be migrated to revision 0002 or later.

        Args:
            engine: SQLAlchemy engine of the regward store.
            max_lifetime: maximum expiry in seconds a token may be created or rotated with.
            rotation_overlap: seconds the old secret stays valid after `rotate`.
            clock: returns the current Unix time.
        """
        self._engine = engine
        # Writes take the SQLite write lock up front so they wait for other writers instead of
        # failing; the option has no effect on PostgreSQL.
        self._write_engine = engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
        self._max_lifetime = max_lifetime
        self._overlap = rotation_overlap
        self._clock = clock
        self._last_use_written: dict[str, float] = {}
        self._lock = threading.Lock()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _check_lifetime(self, expires_in: float) -> None:
        if expires_in <= 0:
            raise TokenStoreError(f"invalid expiry {expires_in:g} s: expected a positive duration")
        if expires_in > self._max_lifetime:
            raise TokenStoreError(
                f"expiry of {expires_in / 86400:g} days is longer than the maximum of "
                f"{self._max_lifetime / 86400:g} days (auth.maxTokenLifetime)"
            )

    def create(
        self,
        *,
        repositories: Sequence[str],
        actions: Sequence[Action],
        expires_in: float,
        description: str,
    ) -> IssuedStaticToken:
        """Create a token and return it with its secret, which cannot be read again.

        Args:
            repositories: repository names or globs (policy file syntax) the token covers.
            actions: actions allowed on them.
            expires_in: seconds until the token expires, at most the configured maximum.
            description: free text shown by `regward token list`.

        Raises:
            TokenStoreError: no repositories or actions, an expiry beyond the maximum, or a
                database error.
        """
        if not repositories:
            raise TokenStoreError("a static token needs at least one repository")
        if not actions:
            raise TokenStoreError("a static token needs at least one action")
        for pattern in repositories:
            try:
                check_repository_pattern(pattern)
            except PatternError as exc:
                raise TokenStoreError(str(exc)) from exc
        self._check_lifetime(expires_in)
        now = self._now()
        token_id = secrets.token_hex(6)
        secret = secrets.token_hex(32)
        requested_actions = set(actions)
        row = StaticTokenRow(
            id=token_id,
            description=description,
            repositories=list(dict.fromkeys(repositories)),
            actions=[str(a) for a in Action if a in requested_actions],
            created_at=now,
            expires_at=datetime.fromtimestamp(now.timestamp() + expires_in, UTC),
            secret_hash=_hash(token_id, secret),
        )
        token = _to_token(row)
        try:
            with Session(self._write_engine) as session, session.begin():
                session.add(row)
        except SQLAlchemyError as exc:
            raise TokenStoreError(f"cannot store the new token: {exc}") from exc
        logger.info(
            "created static token %s for %s (%s), expires %s",
            token_id,
            ", ".join(token.repositories),
            ",".join(str(a) for a in token.actions),
            token.expires_at.isoformat(),
        )
        return IssuedStaticToken(token=token, secret=f"{TOKEN_PREFIX}{token_id}_{secret}")

    def list_tokens(self) -> list[StaticToken]:
        """Return every token, oldest first, without secrets.

        Raises:
            TokenStoreError: the database query failed.
        """
        try:
            with Session(self._engine) as session:
                rows = session.scalars(
                    select(StaticTokenRow).order_by(StaticTokenRow.created_at, StaticTokenRow.id)
                )
                return [_to_token(row) for row in rows]
        except SQLAlchemyError as exc:
            raise TokenStoreError(f"cannot list tokens: {exc}") from exc

    def get(self, token_id: str) -> StaticToken | None:
        """Return the token with this id, or None.

        Raises:
            TokenStoreError: the database query failed.
        """
        try:
            with Session(self._engine) as session:
                row = session.get(StaticTokenRow, token_id)
                return None if row is None else _to_token(row)
        except SQLAlchemyError as exc:
            raise TokenStoreError(f"cannot read token {token_id}: {exc}") from exc

    def _require(self, token_id: str) -> StaticToken:
        token = self.get(token_id)
        if token is None:
            raise TokenStoreError(f"token {token_id} not found: see `regward token list`")
        return token

    def revoke(self, token_id: str) -> StaticToken:
        """Revoke a token; its current and previous secrets stop working at once.

        Raises:
            TokenStoreError: the id is unknown, the token is already revoked, or the database
                failed.
        """
        statement = (
            update(StaticTokenRow)
            .where(StaticTokenRow.id == token_id, StaticTokenRow.revoked_at.is_(None))
            .values(revoked_at=self._now(), previous_secret_hash=None, previous_valid_until=None)
        )
        try:
            with self._write_engine.begin() as connection:
                changed = connection.execute(statement).rowcount
        except SQLAlchemyError as exc:
            raise TokenStoreError(f"cannot revoke token {token_id}: {exc}") from exc
        token = self._require(token_id)
        if changed != 1:
            raise TokenStoreError(f"token {token_id} is already revoked")
        logger.info("revoked static token %s", token_id)
        return token

    def rotate(self, token_id: str, *, expires_in: float | None = None) -> IssuedStaticToken:
        """Give a token a new secret; the old one stays valid for the rotation overlap.

        The overlap ends at the token's old expiry if that comes first.

        Args:
            token_id: the token to rotate.
            expires_in: new expiry in seconds from now; None keeps the current expiry.

        Raises:
            TokenStoreError: unknown id, a revoked or expired token, an expiry beyond the
                maximum, a concurrent change, or a database error.
        """
        if expires_in is not None:
            self._check_lifetime(expires_in)
        now = self._now()
        current = self._require(token_id)
        status = current.status(now)
        if status != "active":
            raise TokenStoreError(f"token {token_id} is {status}: create a new token instead")
        try:
            with Session(self._engine) as session:
                old_hash = session.scalars(
                    select(StaticTokenRow.secret_hash).where(StaticTokenRow.id == token_id)
                ).one()
        except SQLAlchemyError as exc:
            raise TokenStoreError(f"cannot read token {token_id}: {exc}") from exc

        secret = secrets.token_hex(32)
        overlap_end = min(now.timestamp() + self._overlap, current.expires_at.timestamp())
        values: dict[str, object] = {
            "previous_secret_hash": old_hash,
            "previous_valid_until": datetime.fromtimestamp(overlap_end, UTC),
            "secret_hash": _hash(token_id, secret),
            "rotated_at": now,
        }
        if expires_in is not None:
            values["expires_at"] = datetime.fromtimestamp(now.timestamp() + expires_in, UTC)
        statement = (
            update(StaticTokenRow)
            .where(
                StaticTokenRow.id == token_id,
                StaticTokenRow.secret_hash == old_hash,
                StaticTokenRow.revoked_at.is_(None),
            )
            .values(**values)
        )
        try:
            with self._write_engine.begin() as connection:
                changed = connection.execute(statement).rowcount
        except SQLAlchemyError as exc:
            raise TokenStoreError(f"cannot rotate token {token_id}: {exc}") from exc
        if changed != 1:
            raise TokenStoreError(
                f"token {token_id} was revoked or rotated by someone else meanwhile: check "
                "`regward token list` and try again"
            )
        token = self._require(token_id)
        logger.info(
            "rotated static token %s; the previous secret works until %s",
            token_id,
            datetime.fromtimestamp(overlap_end, UTC).isoformat(),
        )
        return IssuedStaticToken(token=token, secret=f"{TOKEN_PREFIX}{token_id}_{secret}")

    def verify(self, presented: str, client_address: str) -> StaticToken:
        """Check a presented `rgw_…` token and return its record.

        The message stays generic until the secret matched, so a caller cannot learn which ids
        exist.

        Raises:
            AuthenticationError: malformed, unknown, wrong secret, revoked or expired.
            TokenStoreError: the database query failed.
        """
        parsed = parse_token(presented)
        if parsed is None:
            raise AuthenticationError("invalid static token: expected rgw_<id>_<secret>")
        token_id, secret = parsed
        try:
            with Session(self._engine) as session:
                row = session.get(StaticTokenRow, token_id)
                if row is None:
                    raise AuthenticationError("invalid static token")
                token = _to_token(row)
                current_hash, previous_hash = row.secret_hash, row.previous_secret_hash
        except SQLAlchemyError as exc:
            raise TokenStoreError(f"cannot read token {token_id}: {exc}") from exc

        now = self._now()
        presented_hash = _hash(token_id, secret)
        matches_current = hmac.compare_digest(presented_hash, current_hash)
        matches_previous = (
            previous_hash is not None
            and token.previous_valid_until is not None
            and now < token.previous_valid_until
            and hmac.compare_digest(presented_hash, previous_hash)
        )
        if not matches_current and not matches_previous:
            raise AuthenticationError("invalid static token")
        status = token.status(now)
        if status != "active":
            raise AuthenticationError(f"static token {token_id} is {status}")
        self._touch(token_id, now, client_address)
        return token

    def is_active(self, token_id: str) -> bool:
        """Return whether the token exists and is neither revoked nor expired.

        Raises:
            TokenStoreError: the database query failed.
        """
        token = self.get(token_id)
        return token is not None and token.status(self._now()) == "active"

    def _touch(self, token_id: str, now: datetime, client_address: str) -> None:
        with self._lock:
            last = self._last_use_written.get(token_id)
            if last is not None and 0 <= now.timestamp() - last < LAST_USE_INTERVAL:
                return
            self._last_use_written[token_id] = now.timestamp()
        statement = (
            update(StaticTokenRow)
            .where(StaticTokenRow.id == token_id)
            .values(last_used_at=now, last_used_address=client_address or None)
        )
        try:
            with self._write_engine.begin() as connection:
                connection.execute(statement)
        except SQLAlchemyError:
            # The last use is shown by `token list` only; a failed write must not fail the login.
            logger.debug("cannot record last use of token %s", token_id, exc_info=True)
