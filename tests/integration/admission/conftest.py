"""Fixtures of the admission integration tests: the store fixtures, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.store.conftest import database_url, postgres_database, store
from tests.unit.admission.reviews import keep_package_logger

__all__ = ["database_url", "postgres_database", "restore_logging", "store"]


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo the handler that `regward.cli.main.main` installs, so later tests see the logs."""
    with keep_package_logger():
        yield
