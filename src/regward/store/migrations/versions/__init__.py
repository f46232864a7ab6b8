"""Alembic revisions of the store, one module per revision."""
