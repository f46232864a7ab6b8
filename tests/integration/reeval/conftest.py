"""Re-evaluation tests run on SQLite and on a PostgreSQL database the session creates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from regward.store import Store
from tests.integration.store.conftest import database_url, postgres_database  # noqa: F401


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:  # noqa: F811
    """A migrated store on an empty database."""
    with Store(database_url) as opened:
        opened.migrate()
        yield opened
