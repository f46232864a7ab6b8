"""Fixtures of the admission integration tests: the store fixtures, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.integration.store.conftest import database_url, postgres_database, store

__all__ = ["database_url", "postgres_database", "store"]
