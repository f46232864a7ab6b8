"""Alembic migrations of the store, run by `regward.store.Store.migrate`."""
