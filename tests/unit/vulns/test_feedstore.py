"""FeedStore: local and HTTP(S) sync against a loopback server, atomic activation, status."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from regward.vulns import FeedError, FeedStore, FeedSyncError, HttpLimits

from .conftest import ecosystem_range, record

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory, logs request paths, and fails or stalls on request."""

    requests: list[str]
    failures: dict[str, int]
    delay: float

    def do_GET(self) -> None:  # noqa: N802
        self.requests.append(self.path)
        if self.delay:
            time.sleep(self.delay)
        status = self.failures.get(self.path)
        if status is not None:
            self.send_error(status)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return


class Bucket:
    """A directory laid out like osv.dev's bucket, served over loopback HTTP."""

    def __init__(
        self, root: Path, server: http.server.ThreadingHTTPServer, handler: type[_Handler]
    ) -> None:
        self.root = root
        self.server = server
        self.handler = handler
        self.url = f"http://127.0.0.1:{server.server_address[1]}/"

    def put(self, ecosystem: str, data: dict[str, Any]) -> None:
        folder = self.root / ecosystem
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{data['id']}.json").write_text(json.dumps(data))

    def write_index(self, ecosystem: str, with_zip: bool) -> None:
        folder = self.root / ecosystem
        rows = []
        for path in folder.glob("*.json"):
            rows.append((json.loads(path.read_text())["modified"], path.stem))
        rows.sort(reverse=True)
        (folder / "modified_id.csv").write_text(
            "".join(f"{modified},{name}\n" for modified, name in rows)
        )
        top = [(m, f"{ecosystem}/{n}") for m, n in rows]
        (self.root / "modified_id.csv").write_text(
            "".join(f"{m},{n}\n" for m, n in sorted(top, reverse=True))
        )
        archive = folder / "all.zip"
        archive.unlink(missing_ok=True)
        if with_zip:
            with zipfile.ZipFile(archive, "w") as bundle:
                for path in folder.glob("*.json"):
                    bundle.write(path, path.name)

    @property
    def requests(self) -> list[str]:
        return self.handler.requests


@pytest.fixture
def bucket(tmp_path: Path) -> Iterator[Bucket]:
    root = tmp_path / "bucket"
    root.mkdir()
    handler = type("Handler", (_Handler,), {"requests": [], "failures": {}, "delay": 0.0})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Bucket(root, server, handler)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def demo(record_id: str, fixed: str, modified: str) -> dict[str, Any]:
    return record(
        record_id,
        "PyPI",
        "demo",
        ecosystem_range(("introduced", "0"), ("fixed", fixed)),
        modified=modified,
    )


def test_empty_store_status_and_load(tmp_path: Path) -> None:
    store = FeedStore(tmp_path / "store")
    assert store.status().revision is None
    with pytest.raises(FeedError, match="is empty; run a sync first"):
        store.load()


def test_local_sync_and_status(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "A-1.json").write_text(json.dumps(demo("A-1", "1.0", "2025-01-01T00:00:00Z")))
    store = FeedStore(tmp_path / "store")
    result = store.sync(source, now=NOW)
    status = store.status()
    assert result.previous_revision is None
    assert result.changed_ids == frozenset({"A-1"})
    assert result.changed_keys == frozenset({("PyPI", "demo")})
    assert status.revision == result.revision == store.load().revision
    assert status.counts == {"PyPI": 1}
    assert status.records == 1
    assert status.last_sync == NOW
    assert status.source == str(source)
    again = store.sync(source, now=NOW)
    assert again.revision == result.revision
    assert again.changed_ids == frozenset()


def test_http_first_sync_uses_all_zip_then_incremental(bucket: Bucket, tmp_path: Path) -> None:
    bucket.put("PyPI", demo("A-1", "1.0", "2025-01-01T00:00:00Z"))
    bucket.put("PyPI", demo("A-2", "2.0", "2025-01-02T00:00:00Z"))
    bucket.write_index("PyPI", with_zip=True)
    store = FeedStore(tmp_path / "store")
    first = store.sync(bucket.url, ecosystems=["PyPI"], now=NOW)
    assert first.changed_ids == frozenset({"A-1", "A-2"})
    assert "/PyPI/all.zip" in bucket.requests
    assert not any(path.endswith("A-1.json") for path in bucket.requests)

    bucket.requests.clear()
    bucket.put("PyPI", demo("A-2", "2.1", "2025-02-01T00:00:00Z"))
    bucket.put("PyPI", demo("A-3", "3.0", "2025-02-02T00:00:00Z"))
    bucket.write_index("PyPI", with_zip=True)
    second = store.sync(bucket.url, ecosystems=["PyPI"], now=NOW)
    assert second.previous_revision == first.revision
    assert second.changed_ids == frozenset({"A-2", "A-3"})
    assert sorted(bucket.requests) == ["/PyPI/A-2.json", "/PyPI/A-3.json", "/PyPI/modified_id.csv"]
    feed = store.load()
    assert set(feed.records) == {"A-1", "A-2", "A-3"}
    assert feed.records["A-2"].affected[0].ranges[0].events[1].version == "2.1"


def test_http_sync_without_zip_fetches_each_record(bucket: Bucket, tmp_path: Path) -> None:
    bucket.put("PyPI", demo("A-1", "1.0", "2025-01-01T00:00:00Z"))
    bucket.write_index("PyPI", with_zip=False)
    store = FeedStore(tmp_path / "store")
    store.sync(bucket.url, ecosystems=["PyPI"], now=NOW)
    assert "/PyPI/A-1.json" in bucket.requests
    assert set(store.load().records) == {"A-1"}


def test_http_sync_from_top_level_index(bucket: Bucket, tmp_path: Path) -> None:
    bucket.put("PyPI", demo("A-1", "1.0", "2025-01-01T00:00:00Z"))
    bucket.write_index("PyPI", with_zip=False)
    store = FeedStore(tmp_path / "store")
    result = store.sync(bucket.url, now=NOW)
    assert result.changed_ids == frozenset({"A-1"})
    assert "/modified_id.csv" in bucket.requests


def test_http_withdrawal_unblocks(bucket: Bucket, tmp_path: Path) -> None:
    bucket.put("PyPI", demo("A-1", "1.0", "2025-01-01T00:00:00Z"))
    bucket.write_index("PyPI", with_zip=False)
    store = FeedStore(tmp_path / "store")
    store.sync(bucket.url, ecosystems=["PyPI"], now=NOW)
    bucket.put(
        "PyPI", dict(demo("A-1", "1.0", "2025-03-01T00:00:00Z"), withdrawn="2025-03-01T00:00:00Z")
    )
    bucket.write_index("PyPI", with_zip=False)
    result = store.sync(bucket.url, ecosystems=["PyPI"], now=NOW)
    assert result.changed_ids == frozenset({"A-1"})
    assert store.load().records == {}


def test_failed_sync_keeps_previous_revision(bucket: Bucket, tmp_path: Path) -> None:
    bucket.put("PyPI", demo("A-1", "1.0", "2025-01-01T00:00:00Z"))
    bucket.write_index("PyPI", with_zip=False)
    store = FeedStore(tmp_path / "store")
    first = store.sync(bucket.url, ecosystems=["PyPI"], now=NOW)
    bucket.put("PyPI", demo("A-2", "2.0", "2025-02-01T00:00:00Z"))
    bucket.write_index("PyPI", with_zip=False)
    bucket.handler.failures["/PyPI/A-2.json"] = 500
    with pytest.raises(FeedSyncError, match="HTTP 500") as caught:
        store.sync(bucket.url, ecosystems=["PyPI"], now=NOW)
    assert caught.value.status_code == 500
    assert caught.value.url is not None and caught.value.url.endswith("/PyPI/A-2.json")
    assert store.status().revision == first.revision
    assert set(store.load().records) == {"A-1"}


def test_interrupted_write_keeps_previous_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "A-1.json").write_text(json.dumps(demo("A-1", "1.0", "2025-01-01T00:00:00Z")))
    store = FeedStore(tmp_path / "store")
    first = store.sync(source, now=NOW)
    (source / "A-2.json").write_text(json.dumps(demo("A-2", "2.0", "2025-01-02T00:00:00Z")))

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(zipfile.ZipFile, "writestr", crash)
    with pytest.raises(KeyboardInterrupt):
        store.sync(source, now=NOW)
    monkeypatch.undo()
    assert store.active_revision() == first.revision
    assert set(store.load().records) == {"A-1"}
    leftovers = [p.name for p in (tmp_path / "store" / "revisions").iterdir()]
    assert leftovers == [first.revision]


def test_record_over_size_limit_fails_sync(bucket: Bucket, tmp_path: Path) -> None:
    bucket.put("PyPI", dict(demo("A-1", "1.0", "2025-01-01T00:00:00Z"), details="x" * 4096))
    bucket.write_index("PyPI", with_zip=False)
    store = FeedStore(tmp_path / "store", http_limits=HttpLimits(max_record_bytes=1024))
    with pytest.raises(FeedSyncError, match="larger than the limit of 1024 bytes"):
        store.sync(bucket.url, ecosystems=["PyPI"], now=NOW)
    assert store.active_revision() is None


def test_slow_server_times_out(bucket: Bucket, tmp_path: Path) -> None:
    bucket.put("PyPI", demo("A-1", "1.0", "2025-01-01T00:00:00Z"))
    bucket.write_index("PyPI", with_zip=False)
    bucket.handler.delay = 2.0
    store = FeedStore(tmp_path / "store", http_limits=HttpLimits(timeout=0.3))
    with pytest.raises(FeedSyncError, match="failed"):
        store.sync(bucket.url, ecosystems=["PyPI"], now=NOW)


def test_non_http_url_rejected(tmp_path: Path) -> None:
    store = FeedStore(tmp_path / "store")
    with pytest.raises(FeedError, match="does not exist"):
        store.sync("ftp://example.invalid/feed")


def test_secdb_sync_keeps_revision(tmp_path: Path) -> None:
    from regward.vulns import load

    from .conftest import vulns_asset

    secdb = vulns_asset("alpine-secdb")
    store = FeedStore(tmp_path / "store")
    result = store.sync(secdb, now=NOW)
    assert result.revision == load(secdb).revision
    assert store.load().revision == result.revision
    assert store.status().counts == {"Alpine:v3.10": 1201, "Alpine:v3.8": 1173}
