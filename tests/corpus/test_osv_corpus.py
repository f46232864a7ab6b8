"""The matcher over the whole OSV corpus: loading, recorded osv.dev responses, range consistency."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from regward.vulns import Feed, MatchOptions, load, match_report
from regward.vulns.matcher import _in_range, _Installed, _prepare_entry
from tests.unit.vulns.cassettes import replay, unexplained

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def corpus(data_dir: Path) -> Feed:
    started = time.perf_counter()
    feed = load(data_dir / "osv")
    print(f"\nloaded {len(feed.records)} records in {time.perf_counter() - started:.1f} s")
    return feed


def test_corpus_counts(corpus: Feed) -> None:
    counts = corpus.counts()
    assert counts["Go"] == 4291 - 17
    # MULTI-ECO-FIX-DEMO, an osv.dev website sample, also names a PyPI package.
    assert counts["PyPI"] == 2661 - 10 + 1
    assert counts["crates.io"] == 714 - 9
    assert (counts["AlmaLinux:8"], counts["AlmaLinux:9"], counts["AlmaLinux:10"]) == (
        3237,
        1783,
        660,
    )
    assert len(corpus.withdrawn) == 17 + 10 + 9


def test_cassette_answers_agree(corpus: Feed, data_dir: Path) -> None:
    recorded = json.loads((data_dir / "osv/distro-samples/cassettes/QUERIES.json").read_text())
    result = replay(corpus, recorded["queries"])
    print(
        f"\ncompared {result.compared} queries, {result.agreeing} agree, "
        f"{result.with_local_answers} with locally present answers, {len(result.differences)} explained differences"
    )
    for difference in result.differences:
        print(f"  {difference}")
    assert result.compared == 957
    assert unexplained(result.differences) == []
    assert result.agreeing == 957 - 8


def test_secdb_agrees_on_alpine_3_10_answers(data_dir: Path) -> None:
    # The secdb snapshot covers v3.3–v3.11; osv.dev's responses for an Alpine 3.10 image name no record
    # that exists in it, and the converted records must not flag the image's packages either.
    feed = load(data_dir / "alpine-secdb")
    recorded = json.loads((data_dir / "osv/distro-samples/cassettes/QUERIES.json").read_text())
    queries = [q for q in recorded["queries"] if q.get("ecosystem") == "Alpine:v3.10"]
    result = replay(feed, queries)
    assert result.compared == 11
    assert result.agreeing == 11
    assert feed.lookup("Alpine:v3.10", "busybox")


def test_unparseable_ranges_are_the_known_malformed_ones(corpus: Feed, data_dir: Path) -> None:
    problems = set()
    for record in corpus.records.values():
        for affected in record.affected:
            entry = _prepare_entry(record, affected)
            if entry is None:
                continue
            problems |= {
                (record.id, item.problem[0]) for item in entry.ranges if item.problem is not None
            }
    assert problems == {("PYSEC-2019-125", "2019-09-12"), ("PYSEC-2021-371", "0.2.0-n653")}
    secdb = load(data_dir / "alpine-secdb")
    malformed = set()
    for record in secdb.records.values():
        for affected in record.affected:
            entry = _prepare_entry(record, affected)
            assert entry is not None
            malformed |= {item.problem[0] for item in entry.ranges if item.problem is not None}
    assert malformed == {
        "4.8.0.-r1",
        "2.7.16-33",
        "4.10-1-r1",
        "0.8.21.r2",
        "1.7.5.-r1",
        "57-1-r2",
        "1.18.-r2",
        "1.0.4.-r0",
        "1.11-20-r0",
        "0.12.5.-r0",
        "2.15.r-r1",
        "10.2.22.r0",
        "10.2.24.r0",
        "10.2.26.r0",
    }


def test_pypi_ranges_agree_with_enumerated_versions(corpus: Feed) -> None:
    # PyPA enumerates the affected releases next to each ECOSYSTEM range; PEP 440 range evaluation
    # must include every listed version except where the record contradicts itself.
    disagreements = []
    checked = 0
    for record in corpus.records.values():
        for affected in record.affected:
            if (
                affected.package is None
                or affected.package.ecosystem != "PyPI"
                or not affected.versions
            ):
                continue
            entry = _prepare_entry(record, affected)
            assert entry is not None
            ranges = [item for item in entry.ranges if item.problem is None]
            if not ranges:
                continue
            for version in affected.versions:
                checked += 1
                installed = _Installed(version, "PyPI", MatchOptions(), "")
                if not any(_in_range(installed, item) for item in ranges):
                    disagreements.append((record.id, version))
    assert checked == 139480
    assert sorted(disagreements) == [
        # The range restarts at 0 after "introduced 2.11", so the sorted events close it at 2.11.6.
        ("PYSEC-2021-114", "2.11.6"),
        # The fixed release itself is listed.
        ("PYSEC-2023-177", "23.9.0"),
        ("PYSEC-2023-177", "23.9.0.post1"),
        # Pre-releases of 3.2 and 4.2 are listed, but the ranges start at the final releases.
        ("PYSEC-2023-61", "3.2a1"),
        ("PYSEC-2023-61", "3.2b1"),
        ("PYSEC-2023-61", "3.2rc1"),
        ("PYSEC-2023-61", "4.2a1"),
        ("PYSEC-2023-61", "4.2b1"),
        ("PYSEC-2023-61", "4.2rc1"),
    ]


def test_every_indexed_package_matches_without_error(corpus: Feed) -> None:
    # One package per index key, at version "0" of the key's ordering family where it parses.
    from regward.sbom.model import Distro, Package

    packages = []
    for ecosystem, name in corpus.index:
        if ecosystem.startswith("AlmaLinux:"):
            packages.append(
                Package(
                    name=name,
                    version="0:0-0",
                    type="rpm",
                    purl="",
                    distro=Distro("almalinux", ecosystem.split(":")[1]),
                )
            )
        elif ecosystem == "PyPI":
            packages.append(
                Package(name=name, version="0.0.1", type="pypi", purl=f"pkg:pypi/{name}@0.0.1")
            )
    report = match_report(corpus, packages)
    assert len(report.findings) > len(packages) // 2
    assert report.not_evaluated == ()
