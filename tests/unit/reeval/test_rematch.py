"""Directory feed polling and the package-memo re-matcher, on the PyPI records of the test feed."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from regward.reeval import (
    DirectoryFeedSource,
    MemoryPortfolio,
    Rematcher,
    diff_feeds,
    package_keys,
)
from regward.sbom.model import Package
from regward.vulns import load
from tests.conftest import asset

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def pypi(name: str, version: str, layer: str = "sha256:layer") -> Package:
    return Package(name, version, "pypi", f"pkg:pypi/{name}@{version}", layer_digest=layer)


@pytest.fixture
def feed_dir(tmp_path: Path) -> Path:
    """A feed directory with the requests and gitpython records of the test feed."""
    directory = tmp_path / "feed"
    directory.mkdir()
    for name in ("PYSEC-2018-28.json", "PYSEC-2023-74.json", "PYSEC-2023-161.json"):
        shutil.copy(asset(f"vulns-feed/{name}"), directory / name)
    return directory


def test_package_keys_normalise_pypi_names() -> None:
    assert package_keys(pypi("GitPython", "3.1.0")) == {("PyPI", "gitpython")}


def test_directory_source_reports_changes(feed_dir: Path) -> None:
    source = DirectoryFeedSource(feed_dir)

    first = source.poll()
    unchanged = source.poll()
    shutil.copy(asset("vulns-feed/PYSEC-2023-262.json"), feed_dir / "PYSEC-2023-262.json")
    added = source.poll()

    assert first is not None and first.initial
    assert unchanged is None
    assert added is not None
    assert added.previous_revision == first.revision
    assert added.changed_ids == {"PYSEC-2023-262"}
    assert added.changed_keys == {("PyPI", "searchor")}


def test_directory_source_withdrawal_is_a_change(feed_dir: Path) -> None:
    source = DirectoryFeedSource(feed_dir)
    source.poll()
    path = feed_dir / "PYSEC-2023-161.json"
    record = json.loads(path.read_text())
    record["withdrawn"] = "2026-12-01T00:00:00Z"
    path.write_text(json.dumps(record))

    update = source.poll()

    assert update is not None
    assert update.changed_ids == {"PYSEC-2023-161"}
    assert update.changed_keys == {("PyPI", "gitpython")}
    assert "PYSEC-2023-161" not in update.feed.records


def test_touching_files_is_not_a_change(feed_dir: Path) -> None:
    source = DirectoryFeedSource(feed_dir)
    source.poll()
    path = feed_dir / "PYSEC-2018-28.json"
    path.write_bytes(path.read_bytes())

    assert source.poll() is None


def test_diff_feeds_names_keys_before_and_after(tmp_path: Path) -> None:
    old = load(asset("vulns-feed/PYSEC-2018-28.json"))
    record = json.loads(asset("vulns-feed/PYSEC-2018-28.json").read_text())
    record["affected"][0]["package"]["name"] = "requests-two"
    changed_file = tmp_path / "changed.json"
    changed_file.write_text(json.dumps(record))
    new = load(changed_file)

    ids, keys = diff_feeds(old, new)

    assert ids == {"PYSEC-2018-28"}
    assert keys == {("PyPI", "requests"), ("PyPI", "requests-two")}


def test_rematch_reports_and_stores_changes(feed_dir: Path) -> None:
    source = DirectoryFeedSource(feed_dir)
    update = source.poll()
    assert update is not None
    portfolio = MemoryPortfolio()
    portfolio.add("sha256:a", [pypi("requests", "2.19.0"), pypi("six", "1.0")])
    portfolio.add("sha256:b", [pypi("searchor", "2.4.0")])
    rematcher = Rematcher()
    rematcher.set_feed(update.feed, None)

    changes = rematcher.rematch(portfolio, ["sha256:a", "sha256:b"], NOW)

    assert [change.digest for change in changes] == ["sha256:a"]
    assert changes[0].added == {"PYSEC-2018-28", "PYSEC-2023-74"}
    assert portfolio.results["sha256:b"].findings == ()
    assert portfolio.results["sha256:b"].feed_revision == update.revision


def test_memo_forgets_only_changed_keys(feed_dir: Path) -> None:
    source = DirectoryFeedSource(feed_dir)
    first = source.poll()
    assert first is not None
    portfolio = MemoryPortfolio()
    portfolio.add("sha256:a", [pypi("requests", "2.19.0"), pypi("searchor", "2.4.0")])
    portfolio.add("sha256:b", [pypi("requests", "2.19.0", layer="sha256:other")])
    rematcher = Rematcher()
    rematcher.set_feed(first.feed, None)
    rematcher.rematch(portfolio, ["sha256:a", "sha256:b"], NOW)
    assert rematcher.memo_hits == 1  # requests 2.19.0 matched once for both images

    shutil.copy(asset("vulns-feed/PYSEC-2023-262.json"), feed_dir / "PYSEC-2023-262.json")
    second = source.poll()
    assert second is not None
    dropped = rematcher.set_feed(second.feed, second.changed_keys)
    affected = portfolio.digests_for_keys(second.changed_keys)
    changes = rematcher.rematch(portfolio, affected, NOW)

    assert dropped == 1
    assert affected == ["sha256:a"]
    assert [sorted(change.added) for change in changes] == [["PYSEC-2023-262"]]
    finding_packages = {f.package for f in portfolio.results["sha256:a"].findings}
    assert pypi("requests", "2.19.0") in finding_packages


def test_advance_revision_relabels_untouched_results(feed_dir: Path) -> None:
    source = DirectoryFeedSource(feed_dir)
    update = source.poll()
    assert update is not None
    portfolio = MemoryPortfolio()
    portfolio.add("sha256:a", [pypi("requests", "2.19.0")])
    rematcher = Rematcher()
    rematcher.set_feed(update.feed, None)
    rematcher.rematch(portfolio, ["sha256:a"], NOW)
    later = datetime(2026, 12, 2, tzinfo=UTC)

    advanced = portfolio.advance_revision(update.revision, "next", later, matched_before=NOW)
    not_again = portfolio.advance_revision(update.revision, "other", later, matched_before=NOW)

    assert advanced == 1
    assert not_again == 0
    assert portfolio.results["sha256:a"].feed_revision == "next"
    assert portfolio.results["sha256:a"].scanned_at == later
