"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.registry import RunningRegistry, run_registry

FIXTURES = Path(__file__).parent / "fixtures"


def asset(relative: str) -> Path:
    """Return the path of a file under tests/fixtures, failing the test if it is missing."""
    path = FIXTURES / relative
    assert path.exists(), f"missing test fixture: {path}"
    return path


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A fresh docker-registry on a loopback port, empty, without auth."""
    with run_registry(tmp_path / "registry") as running:
        yield running
