"""A feed persisted on disk, synced from a local source or an HTTP(S) bucket laid out like osv.dev's.

Layout of the store directory:

    ACTIVE                          the active revision id (replaced atomically)
    revisions/<revision>/records.zip  every active record as <id>.json
    revisions/<revision>/state.json   source, last sync time, `modified_id.csv` cursors, counts

A sync writes a complete new revision directory first and switches `ACTIVE` with `os.replace`
last, so an interrupted or failed sync leaves the previous revision active.

An HTTP(S) source is a base URL with `<ECOSYSTEM>/modified_id.csv` (rows `<modified>,<ID>`, newest
first) and `<ECOSYSTEM>/<ID>.json`, or, without ecosystems, a top-level `modified_id.csv` with rows
`<modified>,<ECOSYSTEM>/<ID>`. The first sync of an ecosystem downloads `<ECOSYSTEM>/all.zip` when
the server has it; later syncs fetch only the records modified since the newest time seen.

NOTE: a first sync from the top-level index fetches every record one by one, so pass `ecosystems`
for large buckets. Records deleted from a bucket are noticed only if their row is listed again, so
a sync into a fresh store now and then rebuilds what deltas miss.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import io
import json
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from regward import __version__
from regward.vulns import feed as feed_module
from regward.vulns.errors import FeedError, FeedSyncError
from regward.vulns.feed import Feed, FeedLimits

logger = logging.getLogger(__name__)

_ACTIVE = "ACTIVE"
_REVISIONS = "revisions"
_RECORDS = "records.zip"
_STATE = "state.json"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on every request a sync makes."""

    timeout: float = 30.0
    """Seconds to wait for a connection or for data."""
    max_csv_bytes: int = 512 * 1024 * 1024
    """Largest `modified_id.csv`, in bytes."""
    max_record_bytes: int = 32 * 1024 * 1024
    """Largest record, in bytes."""
    max_zip_bytes: int = 4 * 1024 * 1024 * 1024
    """Largest `all.zip`, in bytes."""
    user_agent: str = f"regward/{__version__}"


@dataclass(frozen=True)
class SyncResult:
    """The changes one sync made."""

    revision: str
    """The active revision after the sync."""
    changed_ids: frozenset[str]
    """Records added, changed, withdrawn or removed."""
    changed_keys: frozenset[tuple[str, str]]
    """(index ecosystem, normalised name) keys named by changed records, before or after the change."""
    previous_revision: str | None = None


@dataclass(frozen=True)
class FeedStatus:
    """The state of the active revision."""

    revision: str | None
    """None when nothing has been synced yet."""
    counts: Mapping[str, int] = field(default_factory=dict)
    """Active records per normalised ecosystem."""
    last_sync: datetime | None = None
    source: str | None = None
    records: int = 0


class FeedStore:
    """A synced feed in a directory; see the module docstring for the layout."""

    def __init__(
        self,
        directory: Path | str,
        *,
        http_limits: HttpLimits | None = None,
        feed_limits: FeedLimits | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.http_limits = http_limits or HttpLimits()
        self.feed_limits = feed_limits or FeedLimits()

    # --- reading ---------------------------------------------------------------------------------

    def active_revision(self) -> str | None:
        """Return the active revision id, or None before the first sync."""
        try:
            revision = (self.directory / _ACTIVE).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise FeedError(f"cannot read {self.directory / _ACTIVE}: {exc}") from exc
        return revision or None

    def load(self) -> Feed:
        """Load the active revision.

        Raises:
            FeedError: nothing has been synced yet, or the revision cannot be read.
        """
        revision = self.active_revision()
        if revision is None:
            raise FeedError(f"feed store {self.directory} is empty; run a sync first")
        return feed_module.load(self._revision_dir(revision) / _RECORDS, limits=self.feed_limits)

    def status(self) -> FeedStatus:
        """Return the active revision, its record counts per ecosystem and the last sync time."""
        revision = self.active_revision()
        if revision is None:
            return FeedStatus(revision=None)
        state = self._read_state(revision)
        last_sync = state.get("last_sync")
        counts = state.get("counts")
        source = state.get("source")
        return FeedStatus(
            revision=revision,
            counts={str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {},
            last_sync=datetime.fromisoformat(last_sync) if isinstance(last_sync, str) else None,
            source=source if isinstance(source, str) else None,
            records=int(str(state.get("records", 0))),
        )

    # --- syncing ---------------------------------------------------------------------------------

    def sync(
        self,
        source: str | Path,
        *,
        ecosystems: Sequence[str] = (),
        now: datetime | None = None,
    ) -> SyncResult:
        """Sync from a local directory, zip or secdb file, or from an HTTP(S) base URL.

        A local source replaces the feed's content. An HTTP(S) source updates it incrementally.

        Args:
            source: a path, or an `http://` / `https://` base URL.
            ecosystems: for HTTP(S), the ecosystem folders to sync (such as `PyPI`, `Alpine`);
                empty means the top-level `modified_id.csv`.
            now: the sync time to record; defaults to the current time.

        Raises:
            FeedSyncError: the source cannot be fetched; the previous revision stays active.
            FeedError: the source cannot be read or the store cannot be written.
        """
        now = now or datetime.now(UTC)
        previous_revision = self.active_revision()
        previous_state = self._read_state(previous_revision) if previous_revision else {}
        previous_feed, previous_raw = self._load_revision(previous_revision)
        text = str(source)
        cursors: dict[str, str] = {}
        if text.startswith(("http://", "https://")):
            previous_cursors = previous_state.get("cursors")
            if isinstance(previous_cursors, dict):
                cursors = {str(key): str(value) for key, value in previous_cursors.items()}
            raw = self._fetch_http(text, ecosystems, previous_raw, cursors)
            new_feed, _ = feed_module.load_bytes(
                ((f"{record_id}.json", data) for record_id, data in raw.items()), self.feed_limits
            )
        else:
            new_feed, raw = feed_module.load_raw(Path(text), limits=self.feed_limits)
        raw = {record_id: raw[record_id] for record_id in new_feed.records}
        changed_ids, changed_keys = _changes(previous_feed, new_feed)
        state = {
            "revision": new_feed.revision,
            "source": text,
            "last_sync": now.isoformat(),
            "cursors": cursors,
            "counts": new_feed.counts(),
            "records": len(new_feed.records),
        }
        self._write_revision(new_feed.revision, raw, state)
        self._activate(new_feed.revision)
        self._prune(keep={new_feed.revision, previous_revision})
        logger.info(
            "feed sync from %s: revision %s, %d records changed",
            text,
            new_feed.revision[:12],
            len(changed_ids),
        )
        return SyncResult(
            new_feed.revision, frozenset(changed_ids), frozenset(changed_keys), previous_revision
        )

    # --- HTTP ------------------------------------------------------------------------------------

    def _fetch_http(
        self,
        base_url: str,
        ecosystems: Sequence[str],
        previous_raw: Mapping[str, bytes],
        cursors: dict[str, str],
    ) -> dict[str, bytes]:
        """Return the updated raw records; `cursors` is updated in place."""
        base = base_url if base_url.endswith("/") else base_url + "/"
        raw = dict(previous_raw)
        folders: list[str | None] = list(ecosystems) or [None]
        for folder in folders:
            prefix = "" if folder is None else urllib.parse.quote(folder, safe="") + "/"
            csv_url = urllib.parse.urljoin(base, prefix + "modified_id.csv")
            cursor = cursors.get(csv_url)
            rows = list(self._changed_rows(csv_url, cursor, with_folder=folder is None))
            newest = max((row[0] for row in rows), default=cursor, key=_timestamp_or_min)
            if cursor is None and folder is not None:
                archived = self._bootstrap_zip(base, prefix, raw)
                if archived is not None:
                    # Fetch only records that the archive lacks or has in an older version.
                    rows = [
                        row
                        for row in rows
                        if row[1] not in archived
                        or _timestamp(archived[row[1]]) < _timestamp(row[0])
                    ]
            for _, path in rows:
                record_url = urllib.parse.urljoin(base, prefix + _quote_path(path) + ".json")
                data = self._get(record_url, self.http_limits.max_record_bytes, missing_ok=True)
                record_id = path.rsplit("/", 1)[-1]
                if data is None:
                    logger.debug(
                        "record %s is listed but missing at %s; dropping it", record_id, record_url
                    )
                    raw.pop(record_id, None)
                    continue
                raw[record_id] = data
            if newest is not None:
                cursors[csv_url] = newest
        return raw

    def _changed_rows(
        self, csv_url: str, cursor: str | None, *, with_folder: bool
    ) -> Iterator[tuple[str, str]]:
        data = self._get(csv_url, self.http_limits.max_csv_bytes)
        assert data is not None
        for row in csv.reader(io.StringIO(data.decode("utf-8"))):
            if len(row) != 2:
                continue
            modified, path = row[0].strip(), row[1].strip()
            if cursor is not None and _timestamp(modified) < _timestamp(cursor):
                # Rows are newest first; everything from here on was seen by an earlier sync. Rows
                # with exactly the cursor's time are fetched again, since a sync may have stopped
                # part way through records that share a timestamp.
                return
            if with_folder and "/" not in path:
                continue
            yield modified, path

    def _bootstrap_zip(
        self, base: str, prefix: str, raw: dict[str, bytes]
    ) -> dict[str, str] | None:
        """Load `all.zip` into `raw`; return each archived record's `modified`, or None without an archive."""
        url = urllib.parse.urljoin(base, prefix + "all.zip")
        with tempfile.TemporaryDirectory(prefix="regward-feed-") as scratch:
            archive = Path(scratch) / "all.zip"
            if not self._download(url, archive, self.http_limits.max_zip_bytes):
                return None
            fetched_feed, fetched_raw = feed_module.load_raw(archive, limits=self.feed_limits)
        raw.update(fetched_raw)
        for record_id in fetched_feed.withdrawn:
            raw.pop(record_id, None)
        return {record.id: record.modified for record in fetched_feed.records.values()}

    def _open(self, url: str) -> http.client.HTTPResponse | None:
        if not url.startswith(("http://", "https://")):
            raise FeedSyncError(f"refusing to fetch non-HTTP URL {url}", url=url)
        request = urllib.request.Request(url, headers={"User-Agent": self.http_limits.user_agent})  # noqa: S310
        try:
            response = urllib.request.urlopen(request, timeout=self.http_limits.timeout)  # noqa: S310
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise FeedSyncError(
                f"fetching {url} failed: HTTP {exc.code}", url=url, status_code=exc.code
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise FeedSyncError(f"fetching {url} failed: {exc}", url=url) from exc
        assert isinstance(response, http.client.HTTPResponse)
        return response

    def _get(self, url: str, limit: int, *, missing_ok: bool = False) -> bytes | None:
        response = self._open(url)
        if response is None:
            if missing_ok:
                return None
            raise FeedSyncError(f"fetching {url} failed: HTTP 404", url=url, status_code=404)
        chunks: list[bytes] = []
        total = 0
        try:
            with response:
                while chunk := response.read(_CHUNK):
                    total += len(chunk)
                    if total > limit:
                        raise FeedSyncError(
                            f"{url} is larger than the limit of {limit} bytes", url=url
                        )
                    chunks.append(chunk)
        except (TimeoutError, OSError) as exc:
            raise FeedSyncError(f"reading {url} failed: {exc}", url=url) from exc
        return b"".join(chunks)

    def _download(self, url: str, target: Path, limit: int) -> bool:
        response = self._open(url)
        if response is None:
            return False
        total = 0
        try:
            with response, target.open("wb") as out:
                while chunk := response.read(_CHUNK):
                    total += len(chunk)
                    if total > limit:
                        raise FeedSyncError(
                            f"{url} is larger than the limit of {limit} bytes", url=url
                        )
                    out.write(chunk)
        except (TimeoutError, OSError) as exc:
            raise FeedSyncError(f"reading {url} failed: {exc}", url=url) from exc
        return True

    # --- disk ------------------------------------------------------------------------------------

    def _revision_dir(self, revision: str) -> Path:
        return self.directory / _REVISIONS / revision

    def _read_state(self, revision: str | None) -> dict[str, object]:
        if revision is None:
            return {}
        path = self._revision_dir(revision) / _STATE
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FeedError(f"cannot read feed state {path}: {exc}") from exc
        if not isinstance(state, dict):
            raise FeedError(f"feed state {path} is not a JSON object")
        return state

    def _load_revision(self, revision: str | None) -> tuple[Feed | None, dict[str, bytes]]:
        if revision is None:
            return None, {}
        loaded, raw = feed_module.load_raw(
            self._revision_dir(revision) / _RECORDS, limits=self.feed_limits
        )
        return loaded, raw

    def _write_revision(
        self, revision: str, raw: Mapping[str, bytes], state: Mapping[str, object]
    ) -> None:
        final = self._revision_dir(revision)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.is_dir():
                # Same content as an existing revision: only its state (time, cursors) changes.
                _write_atomic(final / _STATE, json.dumps(state, indent=1, sort_keys=True).encode())
                return
            scratch = Path(tempfile.mkdtemp(prefix=f".{revision[:12]}-", dir=final.parent))
            try:
                with zipfile.ZipFile(
                    scratch / _RECORDS, "w", compression=zipfile.ZIP_STORED
                ) as bundle:
                    for record_id in sorted(raw):
                        bundle.writestr(_member_name(record_id), raw[record_id])
                _write_atomic(
                    scratch / _STATE, json.dumps(state, indent=1, sort_keys=True).encode()
                )
                _fsync_dir(scratch)
                os.replace(scratch, final)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
        except OSError as exc:
            raise FeedError(f"cannot write feed revision under {final.parent}: {exc}") from exc

    def _activate(self, revision: str) -> None:
        try:
            _write_atomic(self.directory / _ACTIVE, (revision + "\n").encode("ascii"))
        except OSError as exc:
            raise FeedError(
                f"cannot switch the active feed revision in {self.directory}: {exc}"
            ) from exc

    def _prune(self, keep: set[str | None]) -> None:
        root = self.directory / _REVISIONS
        for path in root.iterdir():
            if path.name not in keep:
                logger.debug("removing old feed revision %s", path.name)
                shutil.rmtree(path, ignore_errors=True)


def _quote_path(path: str) -> str:
    return "/".join(urllib.parse.quote(part, safe="") for part in path.split("/"))


def _member_name(record_id: str) -> str:
    return urllib.parse.quote(record_id, safe="") + ".json"


def _timestamp_or_min(value: str | None) -> datetime:
    return _timestamp(value) if value is not None else datetime.min.replace(tzinfo=UTC)


def _timestamp(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _write_atomic(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _changes(old: Feed | None, new: Feed) -> tuple[set[str], set[tuple[str, str]]]:
    old_digests = old.digests if old is not None else {}
    changed = {
        record_id
        for record_id, digest in new.digests.items()
        if old_digests.get(record_id) != digest
    }
    changed |= set(old_digests) - set(new.digests)
    keys: set[tuple[str, str]] = set()
    for record_id in changed:
        if record_id in new.records:
            keys |= new.keys_of(new.records[record_id])
        if old is not None and record_id in old.records:
            keys |= old.keys_of(old.records[record_id])
    return changed, keys
