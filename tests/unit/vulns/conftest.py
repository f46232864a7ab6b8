"""Helpers shared by the vulnerability-engine tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from regward.vulns import Feed, load_bytes

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "vulns"


def vulns_asset(relative: str) -> Path:
    """Return a path under tests/fixtures/vulns, failing the test if it is missing."""
    path = FIXTURES / relative
    assert path.exists(), f"missing test fixture: {path}"
    return path


def record(
    record_id: str,
    ecosystem: str,
    name: str,
    *ranges: dict[str, Any],
    versions: list[str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Return an OSV record with one affected package."""
    affected: dict[str, Any] = {
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": list(ranges),
    }
    if versions is not None:
        affected["versions"] = versions
    data: dict[str, Any] = {
        "id": record_id,
        "modified": "2025-01-01T00:00:00Z",
        "affected": [affected],
    }
    data.update(fields)
    return data


def ecosystem_range(*events: tuple[str, str], kind: str = "ECOSYSTEM") -> dict[str, Any]:
    """Return a range with events given as (kind, version) pairs."""
    return {"type": kind, "events": [{event: version} for event, version in events]}


def feed_of(*records: dict[str, Any]) -> Feed:
    """Build a feed from record dicts."""
    feed, _ = load_bytes((f"{item['id']}.json", json.dumps(item).encode()) for item in records)
    return feed


@pytest.fixture
def fixtures_dir() -> Path:
    """The tests/fixtures/vulns directory."""
    return FIXTURES
