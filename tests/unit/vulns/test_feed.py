"""Loading feeds: directories, zips, secdb, withdrawal, alias and upstream grouping, revisions."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from regward.vulns import FeedError, load, load_secdb

from .conftest import ecosystem_range, feed_of, record, vulns_asset


def test_load_directory_indexes_records() -> None:
    feed = load(vulns_asset("records"))
    assert "PYSEC-2018-28" in feed.records
    assert [r.id for r in feed.lookup("PyPI", "Requests")] == ["PYSEC-2018-28"]
    assert [r.id for r in feed.lookup("Debian:7", "nginx")] == ["DSA-3029-1"]


def test_load_zip_equals_directory(tmp_path: Path) -> None:
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(vulns_asset("records").glob("*.json")):
            bundle.write(path, path.name)
    assert load(archive).revision == load(vulns_asset("records")).revision


def test_revision_depends_on_content_only(tmp_path: Path) -> None:
    first = feed_of(
        record("A-1", "PyPI", "a", ecosystem_range(("introduced", "0"), ("fixed", "1.0")))
    )
    same = feed_of(
        record("A-1", "PyPI", "a", ecosystem_range(("introduced", "0"), ("fixed", "1.0")))
    )
    changed = feed_of(
        record("A-1", "PyPI", "a", ecosystem_range(("introduced", "0"), ("fixed", "1.1")))
    )
    assert first.revision == same.revision
    assert first.revision != changed.revision


def test_withdrawn_records_dropped() -> None:
    feed = feed_of(
        record(
            "A-1",
            "PyPI",
            "a",
            ecosystem_range(("introduced", "0")),
            withdrawn="2024-02-02T00:00:00Z",
        ),
        record("A-2", "PyPI", "a", ecosystem_range(("introduced", "0"))),
    )
    assert set(feed.records) == {"A-2"}
    assert feed.withdrawn == frozenset({"A-1"})
    assert [r.id for r in feed.lookup("PyPI", "a")] == ["A-2"]


def test_non_osv_files_are_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text(json.dumps(record("A-1", "PyPI", "a")))
    (tmp_path / "notes.json").write_text(json.dumps({"description": "not a record"}))
    (tmp_path / "broken.json").write_text("{")
    feed = load(tmp_path)
    assert set(feed.records) == {"A-1"}
    assert sorted(item.source for item in feed.skipped) == ["broken.json", "notes.json"]


def test_missing_source_raises(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="does not exist"):
        load(tmp_path / "absent")


def test_oversized_record_skipped(tmp_path: Path) -> None:
    from regward.vulns import FeedLimits

    (tmp_path / "big.json").write_text(json.dumps(record("A-1", "PyPI", "a", details="x" * 5000)))
    feed = load(tmp_path, limits=FeedLimits(max_record_bytes=1000))
    assert feed.records == {}
    assert "exceeds the limit" in feed.skipped[0].reason


def test_aliases_are_transitive() -> None:
    feed = feed_of(
        record("GO-1", "Go", "m", aliases=["CVE-1", "GHSA-1"]),
        record("GHSA-1", "Go", "m", aliases=["CVE-1"]),
        record("PYSEC-9", "PyPI", "p", aliases=["GHSA-2"]),
        record("OTHER-1", "PyPI", "p", aliases=["GHSA-2", "CVE-1"]),
    )
    groups = feed.groups
    assert groups.group_of("GO-1") == groups.group_of("PYSEC-9")
    assert {"GO-1", "GHSA-1", "CVE-1", "PYSEC-9", "OTHER-1", "GHSA-2"} <= groups.members("GO-1")


def test_upstream_grouping_single_versus_bundle() -> None:
    feed = feed_of(
        record("DEBIAN-CVE-1", "Debian:12", "x", upstream=["CVE-1"]),
        record("DEBIAN-CVE-2", "Debian:12", "x", upstream=["CVE-2"]),
        record("DSA-1", "Debian:12", "x", upstream=["CVE-1", "CVE-2"]),
    )
    groups = feed.groups
    assert groups.group_of("DEBIAN-CVE-1") == groups.group_of("CVE-1")
    assert groups.group_of("DEBIAN-CVE-1") != groups.group_of("DEBIAN-CVE-2")
    assert groups.group_of("DSA-1") not in {groups.group_of("CVE-1"), groups.group_of("CVE-2")}
    assert groups.upstream_closure("DSA-1") == frozenset({"CVE-1", "CVE-2"})


def test_upstream_cycle_terminates() -> None:
    feed = load(vulns_asset("records"))
    assert feed.groups.upstream_closure("CYCLE-ROOT-1") == frozenset({"CYCLE-ROOT-2"})
    assert feed.groups.upstream_closure("CYCLE-ROOT-3") == frozenset(
        {"CYCLE-ROOT-1", "CYCLE-ROOT-2"}
    )


def test_counts_per_ecosystem() -> None:
    counts = load(vulns_asset("records")).counts()
    assert counts["PyPI"] == 3
    assert counts["Debian:7"] == 1
    assert counts["Alpine:v3.12"] == 1


def test_secdb_converted_and_indexed_on_origin() -> None:
    feed = load(vulns_asset("alpine-secdb/v3.8/main.yaml"))
    expat = feed.lookup("Alpine:v3.8", "expat")
    assert expat, "expat has secfixes in v3.8"
    record_ids = {r.id for r in expat}
    assert all(rid.startswith("ALPINE-CVE-") for rid in record_ids)
    sample = expat[0]
    assert sample.upstream == (sample.id.removeprefix("ALPINE-"),)
    assert sample.affected[0].package is not None
    assert sample.affected[0].package.purl == "pkg:apk/alpine/expat?arch=source"


def test_secdb_zero_means_not_affected(tmp_path: Path) -> None:
    secdb = tmp_path / "main.yaml"
    secdb.write_text(
        "distroversion: v3.19\nreponame: main\npackages:\n"
        "  - pkg:\n      name: busybox\n      secfixes:\n        '0':\n          - CVE-2021-1\n"
        "        1.36.1-r5:\n          - CVE-2021-2 CVE-2021-3\n"
    )
    records = {r.id: r for r in load_secdb([secdb])}
    assert set(records) == {"ALPINE-CVE-2021-2", "ALPINE-CVE-2021-3"}
    events = records["ALPINE-CVE-2021-2"].affected[0].ranges[0].events
    assert [(e.kind.value, e.version) for e in events] == [
        ("introduced", "0"),
        ("fixed", "1.36.1-r5"),
    ]
    assert records["ALPINE-CVE-2021-2"].affected[0].package is not None
    assert records["ALPINE-CVE-2021-2"].affected[0].package.ecosystem == "Alpine:v3.19"


def test_secdb_json_form(tmp_path: Path) -> None:
    document = {
        "distroversion": "v3.20",
        "reponame": "main",
        "packages": [{"pkg": {"name": "curl", "secfixes": {"8.9.0-r0": ["CVE-2024-6197"]}}}],
    }
    path = tmp_path / "main.json"
    path.write_text(json.dumps(document))
    feed = load(path)
    assert [r.id for r in feed.lookup("Alpine:v3.20", "curl")] == ["ALPINE-CVE-2024-6197"]
