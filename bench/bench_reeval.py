"""Benchmark continuous re-evaluation: a full pass over 10,000 images and a delta of 100 records.

Usage: python bench/bench_reeval.py [--images N] [--delta N] [--data DIR] [--seed N]

The portfolio is synthetic but built from real package lists, cataloged by regward's own
catalogers from one layer assembled out of this machine's files:

- Debian packages from `/var/lib/dpkg/status` (with `/etc/os-release`);
- Python distributions from the `*.dist-info/METADATA` files of this virtualenv and of
  `/usr/lib/python3/dist-packages`;
- npm packages from every `node_modules/**/package.json` under `/usr/lib/node_modules` and
  `/usr/share/nodejs`;
- PyPI packages named by the advisories of the OSV corpus, at versions the advisories list as
  released, so that images have real findings.

Images share a few base package sets (slim to full Debian) and add their own Python and npm
packages, as images built from common bases do. The feed is the OSV corpus in `DATA/osv`
(`$REGWARD_DATA_DIR`, else `shared/data` next to the clone).

Measured, through the real `Scheduler` with a job queue in a temporary SQLite database:

1. the full pass: every image re-matched against the loaded feed, its result stored and its
   decision (deny when a finding is `high` or `critical`) recomputed;
2. a delta of N changed records (modified, withdrawn and new records, all naming packages the
   portfolio has): the new feed built, the changed keys computed, the affected images re-matched,
   every other result relabelled for the new revision, and decisions updated.

Times are wall-clock seconds; memory is the process's peak RSS (`ru_maxrss`).
"""

from __future__ import annotations

import argparse
import copy
import glob
import hashlib
import io
import json
import os
import platform
import random
import resource
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from regward.reeval import (
    FeedUpdate,
    JobStore,
    MemoryPortfolio,
    Portfolio,
    ResultChange,
    Scheduler,
    SchedulerSettings,
    diff_feeds,
)
from regward.reeval.scanportfolio import ScanPortfolio
from regward.sbom.catalog import catalog_layers
from regward.sbom.interface import Catalog
from regward.sbom.model import Package
from regward.sbom.sources import LayerBlob
from regward.scanning.scanner import index_keys
from regward.store import Store
from regward.store.scans import ImageFindingRow, ImageScanRow, ScanStore
from regward.vulns import Feed, Severity, load_raw, parse_record

DENY_AT = Severity.HIGH


def rss_mib() -> float:
    """Return the peak resident set size of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- package pools ------------------------------------------------------------------------


def machine_layer() -> bytes:
    """Return an uncompressed tar of this machine's package databases."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add(source: str, target: str) -> None:
            try:
                data = Path(source).read_bytes()
            except OSError:
                return
            info = tarfile.TarInfo(target)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        add("/etc/os-release", "etc/os-release")
        add("/var/lib/dpkg/status", "var/lib/dpkg/status")
        site_dirs = [
            *glob.glob(f"{sys.prefix}/lib/python3*/site-packages"),
            "/usr/lib/python3/dist-packages",
        ]
        for site in site_dirs:
            for metadata in sorted(glob.glob(f"{site}/*.dist-info/METADATA")):
                relative = Path(metadata).relative_to(Path(site).parent)
                add(metadata, f"usr/lib/python3/{relative.as_posix()}")
        for root in ("/usr/lib/node_modules", "/usr/share/nodejs"):
            for manifest in sorted(glob.glob(f"{root}/**/package.json", recursive=True)):
                relative = Path(manifest).relative_to(root)
                if "node_modules" not in relative.parts and root.endswith("nodejs"):
                    # /usr/share/nodejs contains packages at its top level, as a node_modules folder does.
                    relative = Path("node_modules") / relative
                add(manifest, f"usr/lib/{relative.as_posix()}")
    return buffer.getvalue()


def machine_packages() -> list[Package]:
    """Catalog this machine's package databases with regward's catalogers."""
    data = machine_layer()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob = LayerBlob(
        digest, "application/vnd.oci.image.layer.v1.tar", len(data), lambda: io.BytesIO(data)
    )
    return list(catalog_layers([blob]).packages)


def advisory_packages(feed: Feed, rng: random.Random, limit: int) -> list[Package]:
    """Return PyPI packages named by advisories, each at a version its advisory lists."""
    packages: list[Package] = []
    seen: set[tuple[str, str]] = set()
    for record_id in sorted(feed.records):
        for affected in feed.records[record_id].affected:
            if affected.package is None or affected.package.ecosystem != "PyPI":
                continue
            if not affected.versions:
                continue
            name = affected.package.name
            version = rng.choice(affected.versions)
            if (name, version) in seen:
                continue
            seen.add((name, version))
            packages.append(Package(name, version, "pypi", f"pkg:pypi/{name.lower()}@{version}"))
    rng.shuffle(packages)
    return packages[:limit]


@dataclass
class Pools:
    """The package pools images are drawn from."""

    debian: list[Package]
    python: list[Package]
    npm: list[Package]
    advisory: list[Package]


def build_portfolio(pools: Pools, images: int, rng: random.Random) -> MemoryPortfolio:
    """Return `images` synthetic images over the pools, with shared base package sets."""
    base_sizes = [90, 120, 160, 220, 300, 420, 560, len(pools.debian)]
    bases = [tuple(rng.sample(pools.debian, min(size, len(pools.debian)))) for size in base_sizes]
    portfolio = MemoryPortfolio()
    for number in range(images):
        packages: list[Package] = list(rng.choice(bases))
        python_count = rng.randint(0, 40)
        for _ in range(python_count):
            pool = pools.advisory if rng.random() < 0.15 else pools.python
            packages.append(rng.choice(pool))
        if rng.random() < 0.3 and pools.npm:
            packages.extend(rng.sample(pools.npm, min(len(pools.npm), rng.randint(5, 120))))
        digest = "sha256:" + hashlib.sha256(f"image-{number}".encode()).hexdigest()
        portfolio.add(digest, packages)
    return portfolio


# --- the feed and its delta ---------------------------------------------------------------


class PreparedSource:
    """A feed source that returns prepared updates, so load time stays out of the passes."""

    description = "prepared feed"

    def __init__(self) -> None:
        self.pending: list[FeedUpdate] = []
        self.feed: Feed | None = None

    def poll(self) -> FeedUpdate | None:
        if not self.pending:
            return None
        update = self.pending.pop(0)
        self.feed = update.feed
        return update

    def current(self) -> Feed | None:
        return self.feed


def delta_feed(
    feed: Feed,
    raw: dict[str, bytes],
    portfolio_keys: set[tuple[str, str]],
    count: int,
    rng: random.Random,
) -> tuple[Feed, dict[str, int]]:
    """Return a new feed in which `count` records naming portfolio packages changed."""
    candidates = sorted(
        record_id
        for record_id, record in feed.records.items()
        if feed.keys_of(record) & portfolio_keys
    )
    chosen = rng.sample(candidates, min(count, len(candidates)))
    records = dict(feed.records)
    kinds = {"modified": 0, "withdrawn": 0, "new": 0}
    rewritten: set[str] = set()
    for position, record_id in enumerate(chosen):
        document = json.loads(raw[record_id])
        kind = ("modified", "modified", "modified", "withdrawn", "new")[position % 5]
        if kind == "withdrawn":
            document["withdrawn"] = "2026-12-01T00:00:00Z"
            records.pop(record_id)
            rewritten.add(record_id)
        elif kind == "new":
            new = copy.deepcopy(document)
            new["id"] = f"BENCH-{position:04d}"
            new["aliases"] = []
            new["modified"] = "2026-12-01T00:00:00Z"
            records[new["id"]] = parse_record(new)
        else:
            # Every version becomes affected: the kind of change a corrected advisory makes.
            for affected in document.get("affected", []):
                affected["ranges"] = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
            document["modified"] = "2026-12-01T00:00:00Z"
            records[record_id] = parse_record(document)
            rewritten.add(record_id)
        kinds[kind] += 1
    # Unchanged records keep the content digests of the loaded feed, as a re-read would give them.
    digests = {
        record_id: digest
        for record_id, digest in feed.digests.items()
        if record_id not in rewritten
    }
    return Feed.from_records(records.values(), digests=digests), kinds


# --- decisions ----------------------------------------------------------------------------


class Decisions:
    """The decision per digest: deny when a finding is at or above `DENY_AT`."""

    def __init__(self) -> None:
        self.denied: set[str] = set()
        self.flips = 0

    def findings_changed(self, changes: Sequence[ResultChange]) -> None:
        for change in changes:
            deny = any(finding.severity >= DENY_AT for finding in change.after)
            if deny != (change.digest in self.denied):
                self.flips += 1
                if deny:
                    self.denied.add(change.digest)
                else:
                    self.denied.discard(change.digest)


# --- storage ------------------------------------------------------------------------------


def store_catalogs(store: Store, portfolio: MemoryPortfolio) -> ScanPortfolio:
    """Write every image's catalog and index keys into the gate's scan tables."""
    scans = ScanStore(store.engine)
    now = datetime.now(UTC)
    digests = portfolio.digests_after(None, len(portfolio))
    for digest, packages in portfolio.packages(digests).items():
        scans.save_catalog(
            digest,
            Catalog(packages=tuple(packages)),
            cataloged_at=now,
            seconds=0.0,
            index_keys=index_keys(packages),
        )
    return ScanPortfolio(store.engine)


def result_counts(images: Portfolio, revision: str) -> tuple[int, int]:
    """Return (findings stored, results on another revision than `revision`)."""
    if isinstance(images, MemoryPortfolio):
        results = images.results.values()
        return (
            sum(len(result.findings) for result in results),
            sum(1 for result in results if result.feed_revision != revision),
        )
    assert isinstance(images, ScanPortfolio)
    with images.engine.connect() as connection:
        findings = connection.execute(select(func.count()).select_from(ImageFindingRow)).scalar()
        stale = connection.execute(
            select(func.count()).where(ImageScanRow.feed_revision != revision)
        ).scalar()
    return int(findings or 0), int(stale or 0)


# --- main ---------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its results as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000, help="images in the portfolio")
    parser.add_argument("--delta", type=int, default=100, help="records changed in the delta")
    parser.add_argument(
        "--data",
        default=os.environ.get(
            "REGWARD_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "data")
        ),
        help="folder that contains osv/ (default: $REGWARD_DATA_DIR, else shared/data next to "
        "the clone)",
    )
    parser.add_argument("--seed", type=int, default=20261201, help="random seed")
    parser.add_argument(
        "--store",
        choices=("memory", "sqlite"),
        default="memory",
        help="where catalogs and results live: in memory (the matching engine alone), or in the "
        "gate's scan tables in a SQLite file (default: memory)",
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    started = time.perf_counter()
    feed, raw = load_raw(Path(args.data) / "osv")
    load_seconds = time.perf_counter() - started
    print(
        f"feed: {len(feed.records)} records, {len(feed.index)} keys, loaded in {load_seconds:.2f} s"
    )

    started = time.perf_counter()
    machine = machine_packages()
    pools = Pools(
        debian=[p for p in machine if p.type == "deb"],
        python=[p for p in machine if p.type == "pypi"],
        npm=[p for p in machine if p.type == "npm"],
        advisory=advisory_packages(feed, rng, 3000),
    )
    portfolio = build_portfolio(pools, args.images, rng)
    total_packages = sum(
        len(packages)
        for packages in portfolio.packages(portfolio.digests_after(None, args.images)).values()
    )
    print(
        f"portfolio: {len(portfolio)} images, {total_packages} packages "
        f"({total_packages / max(1, len(portfolio)):.0f} per image) from {len(pools.debian)} deb, "
        f"{len(pools.python)} python, {len(pools.npm)} npm and {len(pools.advisory)} advisory-named "
        f"PyPI packages; built in {time.perf_counter() - started:.2f} s; peak RSS {rss_mib():.0f} MiB"
    )

    source = PreparedSource()
    source.pending.append(
        FeedUpdate(feed, feed.revision, None, frozenset(feed.records), frozenset(feed.index))
    )
    decisions = Decisions()
    with tempfile.TemporaryDirectory(prefix="regward-bench-") as scratch:
        store = Store(f"sqlite:///{scratch}/bench.db")
        store.migrate()
        jobs = JobStore(store.engine)
        images: Portfolio = portfolio
        if args.store == "sqlite":
            started = time.perf_counter()
            images = store_catalogs(store, portfolio)
            print(
                f"stored {len(portfolio)} catalogs in the scan tables in "
                f"{time.perf_counter() - started:.2f} s"
            )
        scheduler = Scheduler(
            source,
            images,
            jobs,
            settings=SchedulerSettings(feed_interval=1e-6, full_interval=0, batch_size=500),
            listeners=[decisions],
        )

        # (1): the full pass.
        rss_before = rss_mib()
        started = time.perf_counter()
        scheduler.run_until_idle()
        full_seconds = time.perf_counter() - started
        full_job = jobs.jobs()[0]
        findings, _ = result_counts(images, feed.revision)
        memo = scheduler.rematcher
        print(
            f"full pass: {full_job.processed} images in {full_seconds:.2f} s "
            f"({full_job.processed / full_seconds:,.0f} images/s), {findings} findings, "
            f"{len(decisions.denied)} images denied; distinct packages matched {memo.memo_misses}, "
            f"memo hits {memo.memo_hits}; peak RSS {rss_before:.0f} → {rss_mib():.0f} MiB"
        )

        # (2): the delta.
        portfolio_keys = portfolio.index_keys()
        denied_before = len(decisions.denied)
        flips_before = decisions.flips
        started = time.perf_counter()
        new_feed, kinds = delta_feed(feed, raw, portfolio_keys, args.delta, rng)
        build_seconds = time.perf_counter() - started
        diff_started = time.perf_counter()
        changed_ids, changed_keys = diff_feeds(feed, new_feed)
        diff_seconds = time.perf_counter() - diff_started
        source.pending.append(
            FeedUpdate(new_feed, new_feed.revision, feed.revision, changed_ids, changed_keys)
        )
        affected = len(images.digests_for_keys(changed_keys))
        apply_started = time.perf_counter()
        scheduler.run_until_idle()
        apply_seconds = time.perf_counter() - apply_started
        delta_seconds = time.perf_counter() - started
        delta_job = jobs.jobs()[0]
        _, stale = result_counts(images, new_feed.revision)
        print(
            f"delta: {len(changed_ids)} records changed ({kinds['modified']} modified, "
            f"{kinds['withdrawn']} withdrawn, {kinds['new']} new), {len(changed_keys)} package keys, "
            f"{affected} images affected; new feed built in {build_seconds:.2f} s, diff "
            f"{diff_seconds:.2f} s, re-match and store {apply_seconds:.2f} s; total "
            f"{delta_seconds:.2f} s; {delta_job.changed} images changed findings, "
            f"{decisions.flips - flips_before} decisions flipped ({denied_before} → "
            f"{len(decisions.denied)} denied); {stale} results left on an old revision; "
            f"peak RSS {rss_mib():.0f} MiB"
        )
        store.close()

    print()
    print("| measurement | value |")
    print("|---|---|")
    print(f"| images | {len(portfolio)} |")
    print(
        f"| packages (per image) | {total_packages} ({total_packages / max(1, len(portfolio)):.0f}) |"
    )
    print(f"| feed records / load | {len(feed.records)} / {load_seconds:.2f} s |")
    print(f"| full pass | {full_seconds:.2f} s |")
    print(f"| delta records / affected images | {len(changed_ids)} / {affected} |")
    print(f"| delta, feed built to decisions updated | {delta_seconds:.2f} s |")
    print(f"| delta, re-match and store only | {apply_seconds:.2f} s |")
    print(f"| peak RSS | {rss_mib():.0f} MiB |")
    print(f"| run at | {datetime.now(UTC).isoformat(timespec='seconds')} |")


if __name__ == "__main__":
    main()
