"""Benchmark the OSV feed load and the matcher over a full corpus.

Usage: python bench/bench_matcher.py [DATA_DIR]

DATA_DIR contains `osv/` (the corpus) and `osv/distro-samples/cassettes/QUERIES.json` (real image
packages); it defaults to $REGWARD_DATA_DIR. The script reports the load time, the memory the
loaded feed uses (tracemalloc) and the process's peak RSS, then packages matched per second for
three workloads: the recorded image packages, one package per indexed (ecosystem, name) key, and
the same key set again once the index entries are prepared.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from pathlib import Path

from packageurl import PackageURL

from regward.sbom.model import Distro, Package
from regward.vulns import Feed, load, match_report

_LANGUAGE_TYPES = {
    "PyPI": "pypi",
    "Go": "golang",
    "npm": "npm",
    "Maven": "maven",
    "crates.io": "cargo",
    "RubyGems": "gem",
    "NuGet": "nuget",
    "Packagist": "composer",
    "Hackage": "hackage",
}


def recorded_packages(queries_path: Path) -> list[Package]:
    """Return the language packages of the recorded osv.dev queries."""
    packages = []
    for query in json.loads(queries_path.read_text())["queries"]:
        base = (query.get("ecosystem") or "").split(":")[0]
        purl_type = _LANGUAGE_TYPES.get(base)
        if purl_type is None:
            continue
        name, version = query["name"], query["version"]
        namespace, short = None, name
        if purl_type == "maven":
            namespace, _, short = name.partition(":")
        elif "/" in name and purl_type in ("golang", "npm", "composer"):
            namespace, _, short = name.rpartition("/")
        packages.append(
            Package(
                name,
                version,
                purl_type,
                PackageURL(purl_type, namespace, short, version).to_string(),
            )
        )
    return packages


def key_packages(feed: Feed) -> list[Package]:
    """Return one package per index key, at an old version so that most records are evaluated in full."""
    packages = []
    for ecosystem, name in sorted(feed.index):
        if ecosystem.startswith("AlmaLinux:"):
            distro = Distro("almalinux", ecosystem.split(":")[1])
            packages.append(Package(name, "1.0-1.el8", "rpm", "", distro=distro))
        elif ecosystem == "PyPI":
            packages.append(Package(name, "1.0", "pypi", f"pkg:pypi/{name}@1.0"))
        elif ecosystem == "Go":
            namespace, _, short = name.rpartition("/")
            packages.append(
                Package(
                    name,
                    "v1.0.0",
                    "golang",
                    PackageURL("golang", namespace or None, short, "v1.0.0").to_string(),
                )
            )
        elif ecosystem == "crates.io":
            packages.append(Package(name, "0.1.0", "cargo", f"pkg:cargo/{name}@0.1.0"))
    return packages


def timed_match(feed: Feed, packages: list[Package]) -> tuple[float, int]:
    """Return (seconds, findings) for matching the packages."""
    started = time.perf_counter()
    report = match_report(feed, packages)
    return time.perf_counter() - started, len(report.findings)


def main(data_dir: Path) -> None:
    """Run the benchmark and print its results."""
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    started = time.perf_counter()
    feed = load(data_dir / "osv")
    load_seconds = time.perf_counter() - started
    print(
        f"load: {len(feed.records)} records in {load_seconds:.2f} s; {len(feed.index)} index keys"
    )
    rss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del feed
    gc.collect()
    # A second load under tracemalloc measures the memory the feed uses; tracing slows it several times.
    tracemalloc.start()
    feed = load(data_dir / "osv")
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"memory held by the loaded feed: {held / 2**20:.0f} MiB (tracemalloc; peak while loading {peak / 2**20:.0f} MiB)"
    )
    print(f"peak RSS after the first load: {rss_after_load / 1024:.0f} MiB")

    recorded = recorded_packages(data_dir / "osv/distro-samples/cassettes/QUERIES.json")
    keys = key_packages(feed)
    for label, packages in (
        ("recorded image packages, cold", recorded),
        ("one package per index key, cold", keys),
        ("one package per index key, warm", keys),
    ):
        seconds, findings = timed_match(feed, packages)
        rate = len(packages) / seconds if seconds else float("inf")
        print(
            f"match {label}: {len(packages)} packages, {findings} findings, {seconds:.2f} s, {rate:,.0f} packages/s"
        )
    gc.collect()
    tracemalloc.start()
    prepared_feed = load(data_dir / "osv")
    match_report(prepared_feed, keys)
    gc.collect()
    held_prepared, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"memory held with every index key prepared: {held_prepared / 2**20:.0f} MiB (tracemalloc)"
    )


if __name__ == "__main__":
    default = os.environ.get("REGWARD_DATA_DIR")
    if len(sys.argv) < 2 and default is None:
        sys.exit("usage: bench_matcher.py DATA_DIR (or set REGWARD_DATA_DIR)")
    main(Path(sys.argv[1] if len(sys.argv) > 1 else str(default)))
