"""Which repositories and tags each portfolio digest was seen in, and how it got there.

A digest enters the portfolio when the gate decides a pull of it, when it is pushed through the
gate, when `regward enroll` finds it under a tag, or when it is promoted. `portfolio_images` has
one row per (repository, digest) with the first and last time it was seen. `portfolio_tags` maps
each seen tag to the digest it pointed at when last seen. Events name these tags, and the
re-evaluation decides for each repository under that repository's rule.

Methods block on the database; async callers run them in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Index, String, Text, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from regward.reeval.jobs import ReevalError
from regward.store.db import SQLITE_BEGIN_IMMEDIATE
from regward.store.models import Base, UtcDateTime

logger = logging.getLogger(__name__)


class Membership(StrEnum):
    """The way a digest entered the portfolio."""

    PULL = "pull"
    PUSH = "push"
    ENROLL = "enroll"
    PROMOTE = "promote"


class PortfolioImageRow(Base):
    """One row of `portfolio_images`."""

    __tablename__ = "portfolio_images"
    __table_args__ = (
        CheckConstraint("source IN ('pull', 'push', 'enroll', 'promote')", name="source"),
        Index("ix_portfolio_images_digest", "digest"),
    )

    repository: Mapped[str] = mapped_column(Text, primary_key=True)
    digest: Mapped[str] = mapped_column(Text, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    """A `Membership` value: how the digest first entered this repository's portfolio."""
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())


class PortfolioTagRow(Base):
    """One row of `portfolio_tags`: the digest a tag pointed at when last seen."""

    __tablename__ = "portfolio_tags"
    __table_args__ = (Index("ix_portfolio_tags_digest", "digest"),)

    repository: Mapped[str] = mapped_column(Text, primary_key=True)
    tag: Mapped[str] = mapped_column(Text, primary_key=True)
    digest: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime())


@dataclass(frozen=True)
class Sighting:
    """A digest seen in a repository, optionally under a tag."""

    repository: str
    digest: str
    tag: str | None
    source: Membership


@dataclass(frozen=True)
class Placement:
    """A repository that contains a digest, with the tags that point at it there."""

    repository: str
    digest: str
    tags: tuple[str, ...]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MembershipStore:
    """Records and reads portfolio membership through a SQLAlchemy engine."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        """Use `engine`, whose database the store's migrations brought up to date."""
        self.engine = engine
        self._write_engine = engine.execution_options(**{SQLITE_BEGIN_IMMEDIATE: True})
        self._clock = clock

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        try:
            with self._write_engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            logger.debug("portfolio write failed", exc_info=True)
            raise ReevalError(f"recording portfolio membership failed: {exc}") from exc

    def record(self, sightings: Sequence[Sighting]) -> None:
        """Add or refresh sightings in one transaction; a tag moves to the digest seen last.

        Raises:
            ReevalError: the write failed; nothing was recorded.
        """
        if not sightings:
            return
        now = self._clock()
        with self._write() as connection:
            for sighting in sightings:
                refreshed = connection.execute(
                    update(PortfolioImageRow)
                    .where(
                        PortfolioImageRow.repository == sighting.repository,
                        PortfolioImageRow.digest == sighting.digest,
                    )
                    .values(last_seen=now)
                    .returning(PortfolioImageRow.digest)
                ).first()
                if refreshed is None:
                    connection.execute(
                        insert(PortfolioImageRow).values(
                            repository=sighting.repository,
                            digest=sighting.digest,
                            source=str(sighting.source),
                            first_seen=now,
                            last_seen=now,
                        )
                    )
                if sighting.tag is None:
                    continue
                moved = connection.execute(
                    update(PortfolioTagRow)
                    .where(
                        PortfolioTagRow.repository == sighting.repository,
                        PortfolioTagRow.tag == sighting.tag,
                    )
                    .values(digest=sighting.digest, seen_at=now)
                    .returning(PortfolioTagRow.tag)
                ).first()
                if moved is None:
                    connection.execute(
                        insert(PortfolioTagRow).values(
                            repository=sighting.repository,
                            tag=sighting.tag,
                            digest=sighting.digest,
                            seen_at=now,
                        )
                    )

    def placements(self, digests: Sequence[str]) -> dict[str, list[Placement]]:
        """Return, per digest, the repositories that hold it and their tags pointing at it.

        Raises:
            ReevalError: the query failed.
        """
        if not digests:
            return {}
        found: dict[str, dict[str, list[str]]] = {}
        try:
            with self.engine.connect() as connection:
                for start in range(0, len(digests), 500):
                    chunk = list(digests[start : start + 500])
                    images = connection.execute(
                        select(PortfolioImageRow.repository, PortfolioImageRow.digest).where(
                            PortfolioImageRow.digest.in_(chunk)
                        )
                    )
                    for repository, digest in images:
                        found.setdefault(digest, {}).setdefault(repository, [])
                    tags = connection.execute(
                        select(
                            PortfolioTagRow.repository, PortfolioTagRow.tag, PortfolioTagRow.digest
                        ).where(PortfolioTagRow.digest.in_(chunk))
                    )
                    for repository, tag, digest in tags:
                        found.setdefault(digest, {}).setdefault(repository, []).append(tag)
        except SQLAlchemyError as exc:
            raise ReevalError(f"reading portfolio membership failed: {exc}") from exc
        return {
            digest: [
                Placement(repository, digest, tuple(sorted(tags)))
                for repository, tags in sorted(repositories.items())
            ]
            for digest, repositories in found.items()
        }

    def digests(self, *, repository: str | None = None) -> list[str]:
        """Return the distinct digests of the portfolio (of one repository), sorted.

        Raises:
            ReevalError: the query failed.
        """
        query = select(PortfolioImageRow.digest).distinct().order_by(PortfolioImageRow.digest)
        if repository is not None:
            query = query.where(PortfolioImageRow.repository == repository)
        try:
            with self.engine.connect() as connection:
                return list(connection.execute(query).scalars())
        except SQLAlchemyError as exc:
            raise ReevalError(f"reading portfolio membership failed: {exc}") from exc
