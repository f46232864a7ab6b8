"""Open the vulnerability feed named on the command line: a path, a feed store, or an HTTP(S) URL.

A source is one of:

- a feed store directory, as `regward feed sync` writes it (it contains an `ACTIVE` file): its
  active revision is loaded;
- any other directory, a `.zip` archive or a single file of OSV records or Alpine secdb
  documents: loaded as it is;
- an `http://` or `https://` base URL laid out like osv.dev's bucket: synced into a feed store
  directory first, then loaded from there.

`FeedProvider` keeps the gate's feed in memory and reloads it when a feed store's active revision
changes, so `regward feed sync` run beside a gate takes effect without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from regward.vulns import Feed, FeedError, FeedStore, FeedSyncError
from regward.vulns import load as load_records

logger = logging.getLogger(__name__)

FEED_STORE_ENV = "REGWARD_FEED_STORE"
"""Environment variable with the default feed store directory."""

FEED_ENV = "REGWARD_FEED"
"""Environment variable with the default `--feed` source."""

DEFAULT_CHECK_SECONDS = 30.0
"""How often the gate looks for a new active revision in a feed store."""


def default_store_dir() -> Path:
    """Return `$REGWARD_FEED_STORE`, else `$XDG_CACHE_HOME/regward/feed`, else `~/.cache/…`."""
    configured = os.environ.get(FEED_STORE_ENV)
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "regward" / "feed"


def is_url(source: str) -> bool:
    """Tell whether a feed source is an HTTP(S) base URL."""
    return source.startswith(("http://", "https://"))


def is_feed_store(path: Path) -> bool:
    """Tell whether `path` is a feed store directory written by `FeedStore.sync`."""
    return (path / "ACTIVE").is_file()


def load_feed(
    source: str, *, store_dir: Path | None = None, ecosystems: Sequence[str] = ()
) -> Feed:
    """Load the feed named by `source`; blocks and uses the CPU, so call it in a thread.

    Args:
        source: a feed store directory, a directory, zip or file of records, or an HTTP(S) URL.
        store_dir: where an HTTP(S) source is synced; defaults to `default_store_dir()`.
        ecosystems: for an HTTP(S) source, the ecosystem folders to sync (all when empty).

    Raises:
        FeedSyncError: an HTTP(S) source could not be fetched.
        FeedError: the source does not exist or cannot be read.
    """
    if is_url(source):
        store = FeedStore(store_dir or default_store_dir())
        result = store.sync(source, ecosystems=ecosystems)
        logger.info("synced feed from %s: revision %s", source, result.revision[:12])
        return store.load()
    path = Path(source)
    if is_feed_store(path):
        return FeedStore(path).load()
    if not path.exists():
        raise FeedError(
            f"feed source {source} does not exist: expected a directory or zip of OSV records, "
            "a feed store directory, or an http(s):// URL"
        )
    return load_records(path)


class FeedProvider:
    """The feed of a long-running process, loaded on first use and reloaded when its store changes.

    Safe to use from one event loop; loading runs in a worker thread.
    """

    def __init__(
        self,
        source: str,
        *,
        store_dir: Path | None = None,
        check_seconds: float = DEFAULT_CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._store_dir = store_dir or (default_store_dir() if is_url(source) else None)
        self._check_seconds = check_seconds
        self._clock = clock
        self._feed: Feed | None = None
        self._store_revision: str | None = None
        self._checked_at = 0.0
        self._failure: tuple[float, FeedError] | None = None
        self._lock = asyncio.Lock()

    @property
    def revision(self) -> str | None:
        """The revision of the loaded feed, or None before the first successful load."""
        return self._feed.revision if self._feed is not None else None

    def _watched_store(self) -> FeedStore | None:
        """Return the feed store whose active revision is watched, if the source has one."""
        if is_url(self.source):
            assert self._store_dir is not None
            return FeedStore(self._store_dir)
        path = Path(self.source)
        return FeedStore(path) if is_feed_store(path) else None

    async def get(self) -> Feed:
        """Return the current feed, loading or reloading it first when needed.

        A failed load is retried at most every `check_seconds`; in between, the same error is
        raised again at once.

        Raises:
            FeedError: the feed could not be loaded (`FeedSyncError` for an unreachable URL).
        """
        feed = self._feed
        if feed is not None and self._clock() - self._checked_at < self._check_seconds:
            return feed
        async with self._lock:
            if self._feed is None:
                return await self._first_load()
            if self._clock() - self._checked_at >= self._check_seconds:
                await self._reload_if_changed()
            return self._feed

    async def _first_load(self) -> Feed:
        failure = self._failure
        if failure is not None and self._clock() - failure[0] < self._check_seconds:
            raise failure[1]
        started = time.perf_counter()
        try:
            feed = await self._load_source()
            store = self._watched_store()
            self._store_revision = (
                await asyncio.to_thread(store.active_revision) if store is not None else None
            )
        except FeedError as exc:
            self._failure = (self._clock(), exc)
            logger.error("loading the vulnerability feed from %s failed: %s", self.source, exc)
            raise
        self._failure = None
        self._feed = feed
        self._checked_at = self._clock()
        logger.info(
            "vulnerability feed %s loaded: revision %s, %d records, %.1f s",
            self.source,
            feed.revision[:12],
            len(feed.records),
            time.perf_counter() - started,
        )
        return feed

    async def _load_source(self) -> Feed:
        try:
            return await asyncio.to_thread(load_feed, self.source, store_dir=self._store_dir)
        except FeedSyncError as exc:
            # An unreachable URL: serve the revision an earlier sync left, when there is one.
            store = self._watched_store()
            if store is None or await asyncio.to_thread(store.active_revision) is None:
                raise
            logger.warning(
                "syncing the vulnerability feed from %s failed, using the stored revision in %s: %s",
                self.source,
                store.directory,
                exc,
            )
            return await asyncio.to_thread(store.load)

    async def _reload_if_changed(self) -> None:
        self._checked_at = self._clock()
        store = self._watched_store()
        if store is None:
            return
        try:
            active = await asyncio.to_thread(store.active_revision)
            if active is None or active == self._store_revision:
                return
            feed = await asyncio.to_thread(store.load)
        except FeedError as exc:
            # The loaded feed stays in use; the next check tries again.
            logger.warning(
                "reloading the vulnerability feed from %s failed, keeping revision %s: %s",
                store.directory,
                self.revision[:12] if self.revision else "none",
                exc,
            )
            return
        logger.info(
            "vulnerability feed %s changed: revision %s replaces %s",
            store.directory,
            feed.revision[:12],
            self.revision[:12] if self.revision else "none",
        )
        self._feed = feed
        self._store_revision = active
