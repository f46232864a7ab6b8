"""Feed sources the scheduler polls: a directory of OSV records, or a synced `FeedStore`.

`poll()` returns a `FeedUpdate` when the feed changed since the last poll, with the ids of the
records that changed and the (ecosystem, name) keys they name before or after the change, which
is what selects the digests to re-match. A directory is re-read only when a file under it was
added, removed, resized or touched; its fingerprint is taken from `stat()` alone.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from regward.vulns.errors import FeedError
from regward.vulns.feed import Feed, load
from regward.vulns.feedstore import FeedStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedUpdate:
    """A change of the feed."""

    feed: Feed
    """The feed after the change."""
    revision: str
    previous_revision: str | None
    """None on the first poll: every record counts as changed."""
    changed_ids: frozenset[str]
    """Records added, changed, withdrawn or removed."""
    changed_keys: frozenset[tuple[str, str]]
    """(index ecosystem, normalised name) keys that changed records name, before or after."""

    @property
    def initial(self) -> bool:
        """True for the first load, which has no previous revision to compare with."""
        return self.previous_revision is None


class FeedSource(Protocol):
    """Something the scheduler polls for feed changes."""

    description: str
    """The source, for logs (a path or URL without credentials)."""

    def poll(self) -> FeedUpdate | None:
        """Return the change since the last poll, or None when nothing changed; blocks.

        Raises:
            VulnsError: the feed could not be read or synced; the previous feed stays current.
        """
        ...

    def current(self) -> Feed | None:
        """Return the feed of the last successful poll, or None before it."""
        ...


def diff_feeds(old: Feed | None, new: Feed) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """Return the ids of records that differ between two feeds and the keys they name.

    A withdrawn record is absent from `Feed.records`, so withdrawing counts as removing it.
    """
    old_digests = old.digests if old is not None else {}
    changed = {
        record_id
        for record_id, digest in new.digests.items()
        if old_digests.get(record_id) != digest
    }
    changed |= set(old_digests) - set(new.digests)
    keys: set[tuple[str, str]] = set()
    for record_id in changed:
        record = new.records.get(record_id)
        if record is not None:
            keys |= new.keys_of(record)
        if old is not None:
            previous = old.records.get(record_id)
            if previous is not None:
                keys |= old.keys_of(previous)
    return frozenset(changed), frozenset(keys)


def directory_fingerprint(directory: Path) -> str:
    """Return a hash of the relative path, size and modification time of every file under it.

    A path that is a file gives the hash of its own size and modification time.

    Raises:
        OSError: the path does not exist or cannot be listed.
    """
    if directory.is_file():
        status = directory.stat()
        return hashlib.sha256(f"{status.st_size}\0{status.st_mtime_ns}".encode()).hexdigest()
    if not directory.is_dir():
        raise FileNotFoundError(f"no such file or directory: {directory}")
    entries: list[str] = []
    for root, directories, files in os.walk(directory, onerror=_raise):
        directories.sort()
        for name in sorted(files):
            path = Path(root) / name
            try:
                status = path.stat()
            except FileNotFoundError:
                continue
            relative = path.relative_to(directory).as_posix()
            entries.append(f"{relative}\0{status.st_size}\0{status.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def _raise(error: OSError) -> None:
    raise error


class DirectoryFeedSource:
    """OSV records (JSON or YAML, and Alpine secdb files) under a local directory, or in one
    local file or zip archive."""

    def __init__(self, directory: Path | str) -> None:
        """Watch `directory`; nothing is read before the first `poll()`."""
        self.directory = Path(directory)
        self.description = str(self.directory)
        self._fingerprint: str | None = None
        self._feed: Feed | None = None
        self._lock = threading.Lock()

    def current(self) -> Feed | None:
        """Return the feed of the last successful poll."""
        return self._feed

    def poll(self) -> FeedUpdate | None:
        """Re-read the directory if its fingerprint changed; see `FeedSource.poll`.

        Raises:
            FeedError: the directory is missing or a file cannot be read.
        """
        with self._lock:
            try:
                fingerprint = directory_fingerprint(self.directory)
            except OSError as exc:
                raise FeedError(f"cannot read feed source {self.directory}: {exc}") from exc
            if fingerprint == self._fingerprint and self._feed is not None:
                return None
            feed = load(self.directory)
            previous = self._feed
            self._fingerprint = fingerprint
            if previous is not None and previous.revision == feed.revision:
                # Files were touched or rewritten with equal content.
                return None
            changed_ids, changed_keys = diff_feeds(previous, feed)
            self._feed = feed
        logger.info(
            "feed directory %s: revision %s, %d records changed, %d package keys",
            self.directory,
            feed.revision[:12],
            len(changed_ids),
            len(changed_keys),
        )
        return FeedUpdate(
            feed=feed,
            revision=feed.revision,
            previous_revision=previous.revision if previous is not None else None,
            changed_ids=changed_ids,
            changed_keys=changed_keys,
        )


class StoreFeedSource:
    """A `FeedStore` synced from a source (local path or an osv.dev-style HTTP(S) bucket)."""

    def __init__(self, store: FeedStore, source: str, *, ecosystems: Iterable[str] = ()) -> None:
        """Sync `store` from `source` on each poll; `ecosystems` limits an HTTP(S) sync."""
        self.store = store
        self.source = source
        self.ecosystems = tuple(ecosystems)
        self.description = source
        self._feed: Feed | None = None
        self._lock = threading.Lock()

    def current(self) -> Feed | None:
        """Return the feed of the last successful poll."""
        return self._feed

    def poll(self) -> FeedUpdate | None:
        """Sync the store and load its new revision when records changed.

        Raises:
            FeedSyncError: the source could not be fetched.
            FeedError: the store could not be read or written.
        """
        with self._lock:
            first = self._feed is None
            result = self.store.sync(self.source, ecosystems=self.ecosystems)
            if not first and not result.changed_ids:
                return None
            feed = self.store.load()
            previous = self._feed
            self._feed = feed
        return FeedUpdate(
            feed=feed,
            revision=result.revision,
            previous_revision=previous.revision if previous is not None else None,
            changed_ids=result.changed_ids,
            changed_keys=result.changed_keys,
        )


class ActiveRevisionSource:
    """A `FeedStore` directory that another process syncs (`regward feed sync`).

    Each poll reads the store's `ACTIVE` file and loads the revision when it changed. The
    changed records are found by comparing the new feed with the one loaded before.
    """

    def __init__(self, store: FeedStore) -> None:
        """Watch `store`; nothing is read before the first `poll()`."""
        self.store = store
        self.description = str(store.directory)
        self._feed: Feed | None = None
        self._revision: str | None = None
        self._lock = threading.Lock()

    def current(self) -> Feed | None:
        """Return the feed of the last successful poll."""
        return self._feed

    def poll(self) -> FeedUpdate | None:
        """Load the active revision if it changed.

        Raises:
            FeedError: the store is empty or cannot be read.
        """
        with self._lock:
            revision = self.store.active_revision()
            if revision is None:
                raise FeedError(
                    f"feed store {self.store.directory} is empty; run `regward feed sync` first"
                )
            if revision == self._revision:
                return None
            feed = self.store.load()
            previous = self._feed
            changed_ids, changed_keys = diff_feeds(previous, feed)
            self._feed = feed
            self._revision = revision
        return FeedUpdate(
            feed=feed,
            revision=feed.revision,
            previous_revision=previous.revision if previous is not None else None,
            changed_ids=changed_ids,
            changed_keys=changed_keys,
        )


def open_feed_source(
    source: str, *, store_dir: Path | None = None, ecosystems: Iterable[str] = ()
) -> FeedSource:
    """Return the feed source for a `--feed` value.

    Args:
        source: an `http(s)://` base URL, synced into `store_dir` on each poll; a feed store
            directory, whose active revision is followed; or a directory, zip or file of
            records, re-read when it changes. A missing path fails at the first poll.
        store_dir: where an HTTP(S) source is synced.
        ecosystems: for an HTTP(S) source, the ecosystem folders to sync.

    Raises:
        FeedError: `source` is a URL and no `store_dir` was given.
    """
    if source.startswith(("http://", "https://")):
        if store_dir is None:
            raise FeedError(f"feed {source} is a URL, so it needs a feed store directory")
        return StoreFeedSource(FeedStore(store_dir), source, ecosystems=ecosystems)
    path = Path(source)
    if (path / "ACTIVE").is_file():
        return ActiveRevisionSource(FeedStore(path))
    return DirectoryFeedSource(path)
