"""The scheduler against a feed directory and a job queue in SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from regward.reeval import (
    DirectoryFeedSource,
    JobKind,
    JobState,
    JobStore,
    MemoryPortfolio,
    Rematcher,
    ResultChange,
    Scheduler,
    SchedulerSettings,
)
from regward.sbom.model import Package
from regward.store import Store
from tests.conftest import asset


def pypi(name: str, version: str) -> Package:
    return Package(name, version, "pypi", f"pkg:pypi/{name}@{version}")


class Recorder:
    """A change listener that keeps every change."""

    def __init__(self) -> None:
        self.changes: list[ResultChange] = []

    def findings_changed(self, changes: Sequence[ResultChange]) -> None:
        self.changes.extend(changes)


class CountingPortfolio(MemoryPortfolio):
    """A memory portfolio that records which digests were re-matched."""

    def __init__(self) -> None:
        super().__init__()
        self.rematched: list[str] = []

    def packages(self, digests: Sequence[str]) -> Mapping[str, Sequence[Package]]:
        self.rematched.extend(digests)
        return super().packages(digests)


@pytest.fixture
def feed_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "feed"
    directory.mkdir()
    shutil.copy(asset("vulns-feed/PYSEC-2018-28.json"), directory)
    return directory


@pytest.fixture
def portfolio() -> CountingPortfolio:
    images = CountingPortfolio()
    images.add("sha256:a", [pypi("requests", "2.19.0")])
    images.add("sha256:b", [pypi("searchor", "2.4.0")])
    images.add("sha256:c", [pypi("six", "1.16.0")])
    return images


def test_delta_rematches_only_affected_digests(
    store: Store, feed_dir: Path, portfolio: CountingPortfolio
) -> None:
    recorder = Recorder()
    jobs = JobStore(store.engine)
    scheduler = Scheduler(DirectoryFeedSource(feed_dir), portfolio, jobs, listeners=[recorder])

    scheduler.run_until_idle()
    first_revision = portfolio.results["sha256:a"].feed_revision
    portfolio.rematched.clear()
    shutil.copy(asset("vulns-feed/PYSEC-2023-262.json"), feed_dir)
    update = scheduler.poll_now()
    scheduler.run_until_idle()

    assert update is not None and not update.initial
    assert portfolio.rematched == ["sha256:b"]
    assert [(c.digest, sorted(c.added)) for c in recorder.changes] == [
        ("sha256:a", ["PYSEC-2018-28"]),
        ("sha256:b", ["PYSEC-2023-262"]),
    ]
    revisions = {digest: result.feed_revision for digest, result in portfolio.results.items()}
    assert first_revision != update.revision
    assert revisions == dict.fromkeys(("sha256:a", "sha256:b", "sha256:c"), update.revision)
    assert [(job.kind, job.state) for job in jobs.jobs()] == [
        (JobKind.DELTA, JobState.DONE),
        (JobKind.FULL, JobState.DONE),
    ]


def test_withdrawal_clears_the_finding(
    store: Store, feed_dir: Path, portfolio: CountingPortfolio
) -> None:
    recorder = Recorder()
    scheduler = Scheduler(
        DirectoryFeedSource(feed_dir), portfolio, JobStore(store.engine), listeners=[recorder]
    )
    scheduler.run_until_idle()
    path = feed_dir / "PYSEC-2018-28.json"
    record = json.loads(path.read_text())
    record["withdrawn"] = "2026-12-01T00:00:00Z"
    path.write_text(json.dumps(record))

    scheduler.poll_now()
    scheduler.run_until_idle()

    assert recorder.changes[-1].digest == "sha256:a"
    assert recorder.changes[-1].removed == {"PYSEC-2018-28"}
    assert portfolio.results["sha256:a"].findings == ()


def test_crashed_job_resumes_after_cursor(
    store: Store, feed_dir: Path, portfolio: CountingPortfolio
) -> None:
    settings = SchedulerSettings(batch_size=1, lease=60)
    crashed = Scheduler(
        DirectoryFeedSource(feed_dir), portfolio, JobStore(store.engine), settings=settings
    )
    crashed.tick()
    assert portfolio.rematched == ["sha256:a"]

    later = datetime.now(UTC) + timedelta(seconds=120)
    jobs = JobStore(store.engine, clock=lambda: later)
    resumed = Scheduler(DirectoryFeedSource(feed_dir), portfolio, jobs, settings=settings)
    resumed.run_until_idle()

    assert portfolio.rematched == ["sha256:a", "sha256:b", "sha256:c"]
    assert [(job.kind, job.state, job.processed) for job in jobs.jobs()] == [
        (JobKind.FULL, JobState.DONE, 3)
    ]


def test_restart_with_same_feed_queues_nothing(
    store: Store, feed_dir: Path, portfolio: CountingPortfolio
) -> None:
    jobs = JobStore(store.engine)
    Scheduler(DirectoryFeedSource(feed_dir), portfolio, jobs).run_until_idle()
    portfolio.rematched.clear()

    Scheduler(DirectoryFeedSource(feed_dir), portfolio, jobs).run_until_idle()

    assert portfolio.rematched == []
    assert len(jobs.jobs()) == 1


def test_full_pass_is_queued_when_due(
    store: Store, feed_dir: Path, portfolio: CountingPortfolio
) -> None:
    jobs = JobStore(store.engine)
    now = [datetime.now(UTC)]
    scheduler = Scheduler(
        DirectoryFeedSource(feed_dir),
        portfolio,
        jobs,
        settings=SchedulerSettings(full_interval=3600),
        now=lambda: now[0],
    )
    scheduler.run_until_idle()
    portfolio.rematched.clear()

    now[0] += timedelta(seconds=1800)
    scheduler.run_until_idle()
    assert portfolio.rematched == []
    now[0] += timedelta(seconds=1801)
    scheduler.run_until_idle()

    assert portfolio.rematched == ["sha256:a", "sha256:b", "sha256:c"]
    assert [job.kind for job in jobs.jobs()] == [JobKind.FULL, JobKind.FULL]


def test_delta_change_seen_after_gate_rewrote_result(
    store: Store, feed_dir: Path, portfolio: CountingPortfolio
) -> None:
    recorder = Recorder()
    scheduler = Scheduler(
        DirectoryFeedSource(feed_dir), portfolio, JobStore(store.engine), listeners=[recorder]
    )
    scheduler.run_until_idle()
    recorder.changes.clear()
    shutil.copy(asset("vulns-feed/PYSEC-2023-262.json"), feed_dir)
    update = scheduler.poll_now()
    assert update is not None
    # A gate that loaded the new feed re-matches the image on a pull before the job runs.
    gate = Rematcher()
    gate.set_feed(update.feed, None)
    gate.rematch(portfolio, ["sha256:b"], datetime.now(UTC))
    assert [f.id for f in portfolio.results["sha256:b"].findings] == ["PYSEC-2023-262"]

    scheduler.run_until_idle()

    assert [(c.digest, sorted(c.added)) for c in recorder.changes] == [
        ("sha256:b", ["PYSEC-2023-262"])
    ]
