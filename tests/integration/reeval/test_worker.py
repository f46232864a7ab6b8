"""`regward worker --once` over the scan tables, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from regward.cli.main import main
from regward.notify import NotificationStore
from regward.reeval import (
    DirectoryFeedSource,
    JobKind,
    JobStore,
    Membership,
    MembershipStore,
    Scheduler,
    Sighting,
)
from regward.reeval.scanportfolio import ScanPortfolio
from regward.sbom.interface import Catalog
from regward.sbom.model import Package
from regward.scanning.scanner import index_keys
from regward.store import Store
from regward.store.scans import ScanStore
from tests.conftest import asset

REQUESTS_IMAGE = "sha256:" + "1" * 64
SEARCHOR_IMAGE = "sha256:" + "2" * 64
CLEAN_IMAGE = "sha256:" + "3" * 64


def pypi(name: str, version: str) -> Package:
    return Package(name, version, "pypi", f"pkg:pypi/{name}@{version}")


def save_catalog(scans: ScanStore, digest: str, packages: list[Package]) -> None:
    scans.save_catalog(
        digest,
        Catalog(packages=tuple(packages)),
        cataloged_at=datetime.now(UTC),
        seconds=0.1,
        index_keys=index_keys(packages),
    )


@pytest.fixture
def feed_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "feed"
    directory.mkdir()
    shutil.copy(asset("vulns-feed/PYSEC-2018-28.json"), directory)
    return directory


def run_worker(feed_dir: Path, database_url: str) -> int:
    return main(["worker", "--feed", str(feed_dir), "--database", database_url, "--once"])


def test_worker_keeps_scan_results_current(store: Store, database_url: str, feed_dir: Path) -> None:
    scans = ScanStore(store.engine)
    save_catalog(scans, REQUESTS_IMAGE, [pypi("requests", "2.19.0")])
    save_catalog(scans, SEARCHOR_IMAGE, [pypi("searchor", "2.4.0")])
    save_catalog(scans, CLEAN_IMAGE, [pypi("six", "1.16.0")])

    assert run_worker(feed_dir, database_url) == 0
    first = {digest: scans.load(digest) for digest in (REQUESTS_IMAGE, SEARCHOR_IMAGE)}
    shutil.copy(asset("vulns-feed/PYSEC-2023-262.json"), feed_dir)
    assert run_worker(feed_dir, database_url) == 0
    requests_scan = scans.load(REQUESTS_IMAGE)
    searchor_scan = scans.load(SEARCHOR_IMAGE)

    first_requests = first[REQUESTS_IMAGE]
    assert first_requests is not None
    assert [f.id for f in first_requests.findings] == ["PYSEC-2018-28"]
    first_searchor = first[SEARCHOR_IMAGE]
    assert first_searchor is not None and first_searchor.findings == ()
    assert searchor_scan is not None and requests_scan is not None
    assert [f.id for f in searchor_scan.findings] == ["PYSEC-2023-262"]
    assert searchor_scan.findings[0].severity == "critical"
    # The requests image was not re-matched, only relabelled for the new revision.
    assert requests_scan.feed_revision == searchor_scan.feed_revision
    assert requests_scan.feed_revision != first_requests.feed_revision
    assert [f.id for f in requests_scan.findings] == ["PYSEC-2018-28"]


def test_withdrawn_record_leaves_the_stored_findings(
    store: Store, database_url: str, feed_dir: Path
) -> None:
    scans = ScanStore(store.engine)
    save_catalog(scans, REQUESTS_IMAGE, [pypi("requests", "2.19.0")])
    assert run_worker(feed_dir, database_url) == 0
    path = feed_dir / "PYSEC-2018-28.json"
    record = json.loads(path.read_text())
    record["withdrawn"] = "2026-12-01T00:00:00Z"
    path.write_text(json.dumps(record))

    assert run_worker(feed_dir, database_url) == 0

    scan = scans.load(REQUESTS_IMAGE)
    assert scan is not None
    assert scan.findings == ()


def test_scan_portfolio_batches(store: Store) -> None:
    scans = ScanStore(store.engine)
    for number in range(5):
        save_catalog(scans, f"sha256:{number:064d}", [pypi("requests", f"2.{number}.0")])
    portfolio = ScanPortfolio(store.engine)

    first = portfolio.digests_after(None, 2)
    rest = portfolio.digests_after(first[-1], 10)

    assert first + rest == sorted(f"sha256:{number:064d}" for number in range(5))
    assert portfolio.digests_for_keys([("PyPI", "requests")]) == first + rest
    assert portfolio.digests_for_keys([("PyPI", "six")]) == []
    packages = portfolio.packages(first)
    assert [p.version for p in packages[first[0]]] == ["2.0.0"]
    assert portfolio.stored_findings(first) == {}


def test_worker_with_policy_records_events(
    store: Store, database_url: str, feed_dir: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "defaultAction: deny\n"
        "rules:\n"
        "  - name: production\n"
        '    repositories: ["team/**"]\n'
        "    vulnerabilities: {denyAtOrAbove: high}\n"
    )
    scans = ScanStore(store.engine)
    save_catalog(scans, SEARCHOR_IMAGE, [pypi("searchor", "2.4.0")])
    MembershipStore(store.engine).record(
        [Sighting("team/search", SEARCHOR_IMAGE, "v1", Membership.ENROLL)]
    )
    command = ["worker", "--feed", str(feed_dir), "--database", database_url, "--once"]
    assert main([*command, "--policy", str(policy)]) == 0
    shutil.copy(asset("vulns-feed/PYSEC-2023-262.json"), feed_dir)

    assert main([*command, "--policy", str(policy)]) == 0

    (event,) = NotificationStore(store.engine).events()
    assert event["type"] == "vulnerability.denied"
    assert event["tags"] == ["v1"]
    assert event["findingIds"] == ["PYSEC-2023-262"]


def test_scheduler_delta_over_scan_tables(store: Store, feed_dir: Path) -> None:
    scans = ScanStore(store.engine)
    save_catalog(scans, REQUESTS_IMAGE, [pypi("requests", "2.19.0")])
    save_catalog(scans, SEARCHOR_IMAGE, [pypi("searchor", "2.4.0")])
    scheduler = Scheduler(
        DirectoryFeedSource(feed_dir), ScanPortfolio(store.engine), JobStore(store.engine)
    )
    scheduler.run_until_idle()
    shutil.copy(asset("vulns-feed/PYSEC-2023-262.json"), feed_dir)

    update = scheduler.poll_now()
    scheduler.run_until_idle()

    assert update is not None
    searchor = scans.load(SEARCHOR_IMAGE)
    requests = scans.load(REQUESTS_IMAGE)
    assert searchor is not None and requests is not None
    assert [f.id for f in searchor.findings] == ["PYSEC-2023-262"]
    assert searchor.feed_revision == update.revision
    assert requests.feed_revision == update.revision
    assert [job.kind for job in scheduler.jobs.jobs()] == [JobKind.DELTA, JobKind.FULL]


def test_delta_patch_removes_withdrawn_finding(store: Store, feed_dir: Path) -> None:
    scans = ScanStore(store.engine)
    save_catalog(scans, REQUESTS_IMAGE, [pypi("requests", "2.19.0"), pypi("searchor", "2.4.0")])
    shutil.copy(asset("vulns-feed/PYSEC-2023-262.json"), feed_dir)
    scheduler = Scheduler(
        DirectoryFeedSource(feed_dir), ScanPortfolio(store.engine), JobStore(store.engine)
    )
    scheduler.run_until_idle()
    path = feed_dir / "PYSEC-2018-28.json"
    record = json.loads(path.read_text())
    record["withdrawn"] = "2026-12-01T00:00:00Z"
    path.write_text(json.dumps(record))

    update = scheduler.poll_now()
    scheduler.run_until_idle()

    scan = scans.load(REQUESTS_IMAGE)
    assert update is not None and scan is not None
    assert [f.id for f in scan.findings] == ["PYSEC-2023-262"]
    assert scan.feed_revision == update.revision
