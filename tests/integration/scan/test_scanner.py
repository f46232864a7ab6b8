"""`ImageScanner` and `FeedProvider` in process, against a real registry and a SQLite store."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from regward.oci.client import RegistryClient
from regward.policy.vulnerabilities import ScanStatus
from regward.scanning.feeds import FeedProvider
from regward.scanning.scanner import ImageScanner, ScanResult
from regward.store import Store
from regward.store.scans import ScanStore
from regward.vulns import FeedError, FeedStore
from tests.integration.scan.conftest import GITPYTHON, REQUESTS, SEARCHOR, feed_dir, python_layer
from tests.support.images import put_manifest
from tests.support.layers import image_manifest, push_layers, sha256
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


@pytest.fixture
async def client(registry: RunningRegistry) -> AsyncIterator[RegistryClient]:
    async with RegistryClient(registry.url) as opened:
        yield opened


@pytest.fixture
def scan_store(tmp_path: Path) -> ScanStore:
    store = Store(f"sqlite:///{tmp_path / 'scans.db'}")
    store.migrate()
    return ScanStore(store.engine)


def partial_feed(directory: Path, *record_ids: str) -> Path:
    directory.mkdir()
    for record_id in record_ids:
        shutil.copy(feed_dir() / f"{record_id}.json", directory)
    return directory


async def scan(
    scanner: ImageScanner, client: RegistryClient, repository: str, reference: str
) -> ScanResult:
    fetched = await client.get_manifest(repository, reference)
    return await scanner.scan(repository, fetched.digest, fetched.manifest)


def ids(result: ScanResult) -> set[str]:
    return {finding.id for finding in result.findings}


async def test_scan_stores_and_reuses(
    registry: RunningRegistry, client: RegistryClient, scan_store: ScanStore
) -> None:
    digest = push_layers(registry.url, "team/app", "v1", [python_layer(REQUESTS, SEARCHOR)])
    scanner = ImageScanner(client, FeedProvider(str(feed_dir())), scan_store)

    first = await scan(scanner, client, "team/app", "v1")
    second = await scan(scanner, client, "team/app", "v1")

    assert first.status is ScanStatus.SCANNED
    assert ids(first) == {"PYSEC-2018-28", "PYSEC-2023-74", "PYSEC-2023-262"}
    assert second.findings == first.findings
    assert (scanner.stats.catalogs, scanner.stats.matches, scanner.stats.reused) == (1, 1, 1)
    stored = scan_store.load(digest)
    assert stored is not None
    assert stored.feed_revision == first.feed_revision
    assert scan_store.digests_for_packages([("PyPI", "searchor")]) == {digest}


async def test_new_feed_revision_rematches_without_cataloging(
    tmp_path: Path, registry: RunningRegistry, client: RegistryClient, scan_store: ScanStore
) -> None:
    push_layers(registry.url, "team/app", "v1", [python_layer(REQUESTS, SEARCHOR)])
    store_dir = tmp_path / "feed-store"
    FeedStore(store_dir).sync(partial_feed(tmp_path / "old", "PYSEC-2018-28"))
    provider = FeedProvider(str(store_dir), check_seconds=0)
    scanner = ImageScanner(client, provider, scan_store)

    before = await scan(scanner, client, "team/app", "v1")
    FeedStore(store_dir).sync(feed_dir())
    after = await scan(scanner, client, "team/app", "v1")

    assert ids(before) == {"PYSEC-2018-28"}
    assert ids(after) == {"PYSEC-2018-28", "PYSEC-2023-74", "PYSEC-2023-262"}
    assert before.feed_revision != after.feed_revision
    assert (scanner.stats.catalogs, scanner.stats.matches) == (1, 2)


async def test_concurrent_scans_share_one_catalog(
    registry: RunningRegistry, client: RegistryClient, scan_store: ScanStore
) -> None:
    push_layers(registry.url, "team/app", "v1", [python_layer(GITPYTHON)])
    scanner = ImageScanner(client, FeedProvider(str(feed_dir())), scan_store)

    results = await asyncio.gather(*(scan(scanner, client, "team/app", "v1") for _ in range(4)))

    assert {len(result.findings) for result in results} == {2}
    assert scanner.stats.catalogs == 1


async def test_catalog_failure_stored_and_reused(
    registry: RunningRegistry, client: RegistryClient, scan_store: ScanStore
) -> None:
    digest = push_layers(registry.url, "team/broken", "v1", [b"not a tar archive\n" * 100])
    scanner = ImageScanner(client, FeedProvider(str(feed_dir())), scan_store)

    first = await scan(scanner, client, "team/broken", "v1")
    second = await scan(scanner, client, "team/broken", "v1")

    assert first.status is ScanStatus.UNSCANNED
    assert second.status is ScanStatus.UNSCANNED
    assert second.detail == first.detail
    assert scanner.stats.catalog_failures == 1
    stored = scan_store.load(digest)
    assert stored is not None
    assert stored.error == first.detail


async def test_index_scans_each_platform(
    registry: RunningRegistry, client: RegistryClient, scan_store: ScanStore
) -> None:
    children = []
    for packages in ((REQUESTS,), (SEARCHOR,)):
        layer = python_layer(*packages)
        manifest, _ = image_manifest([layer])
        push_layers(registry.url, "team/multi", sha256(manifest).split(":")[1][:16], [layer])
        children.append((sha256(manifest), len(manifest)))
    index = (
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
        + ",".join(
            '{"mediaType":"application/vnd.oci.image.manifest.v1+json",'
            f'"digest":"{digest}","size":{size},'
            f'"platform":{{"architecture":"{arch}","os":"linux"}}}}'
            for (digest, size), arch in zip(children, ("amd64", "arm64"), strict=True)
        )
        + "]}"
    ).encode()
    put_manifest(registry.url, "team/multi", "v1", index, "application/vnd.oci.image.index.v1+json")
    scanner = ImageScanner(client, FeedProvider(str(feed_dir())), scan_store)

    result = await scan(scanner, client, "team/multi", "v1")

    assert result.status is ScanStatus.SCANNED
    assert ids(result) == {"PYSEC-2018-28", "PYSEC-2023-74", "PYSEC-2023-262"}
    assert scanner.stats.catalogs == 2


async def test_timeout_returns_unavailable_then_result(
    registry: RunningRegistry, client: RegistryClient, scan_store: ScanStore
) -> None:
    push_layers(registry.url, "team/slow", "v1", [python_layer(SEARCHOR)])
    scanner = ImageScanner(client, FeedProvider(str(feed_dir())), scan_store, timeout=0.0)

    first = await scan(scanner, client, "team/slow", "v1")
    scanner.timeout = None
    second = await scan(scanner, client, "team/slow", "v1")

    assert first.status is ScanStatus.UNAVAILABLE
    assert "did not finish" in first.detail
    assert second.status is ScanStatus.SCANNED
    assert ids(second) == {"PYSEC-2023-262"}
    assert scanner.stats.catalogs == 1


async def test_no_feed_is_unscanned(registry: RunningRegistry, client: RegistryClient) -> None:
    push_layers(registry.url, "team/app", "v1", [python_layer(SEARCHOR)])
    scanner = ImageScanner(client, None, None)

    result = await scan(scanner, client, "team/app", "v1")

    assert result.status is ScanStatus.UNSCANNED
    assert "no vulnerability feed" in result.detail
    assert scanner.stats.catalogs == 0


async def test_unloadable_feed_is_unavailable(
    tmp_path: Path, registry: RunningRegistry, client: RegistryClient
) -> None:
    push_layers(registry.url, "team/app", "v1", [python_layer(SEARCHOR)])
    scanner = ImageScanner(client, FeedProvider(str(tmp_path / "absent")), None)

    result = await scan(scanner, client, "team/app", "v1")

    assert result.status is ScanStatus.UNAVAILABLE
    assert "could not be loaded" in result.detail


async def test_feed_provider_retries_after_failure(tmp_path: Path) -> None:
    now = [0.0]
    provider = FeedProvider(str(tmp_path / "later"), check_seconds=10, clock=lambda: now[0])

    with pytest.raises(FeedError):
        await provider.get()
    shutil.copytree(feed_dir(), tmp_path / "later")
    with pytest.raises(FeedError):
        await provider.get()
    now[0] = 11.0
    feed = await provider.get()

    assert len(feed.records) == 6
    assert provider.revision == feed.revision
