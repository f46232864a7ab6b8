"""Fixtures shared by the whole suite."""

from __future__ import annotations

import logging
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


@pytest.fixture(autouse=True)
def _restore_package_logger() -> Iterator[None]:
    """Undo the handler and level that an in-process `regward` command installs.

    `regward.cli.main.main` configures the `regward` logger; without this, a CLI test would
    raise its level to WARNING and hide later tests' records from `caplog`.
    """
    package_logger = logging.getLogger("regward")
    handlers = list(package_logger.handlers)
    level = package_logger.level
    propagate = package_logger.propagate
    yield
    package_logger.handlers[:] = handlers
    package_logger.setLevel(level)
    package_logger.propagate = propagate
