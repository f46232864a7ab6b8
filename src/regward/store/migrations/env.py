"""Alembic environment of the regward store.

`Store.migrate` passes an open connection in `config.attributes["connection"]` and holds the
transaction and the migration lock itself. Run from the alembic command line, for example to
write a new revision, the database URL comes from `-x url=...` or `REGWARD_DATABASE_URL`:

    alembic -c src/regward/store/migrations/alembic.ini -x url=sqlite:///dev.db upgrade head

Modules that define tables on `Base` must be imported here so that autogenerate sees them.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

# Tables defined outside regward.store, registered on Base when their module is imported.
import regward.admission.records  # noqa: F401
import regward.auth.models  # noqa: F401
import regward.notify.records  # noqa: F401
import regward.reeval.jobs  # noqa: F401
import regward.reeval.membership  # noqa: F401
import regward.store.scans  # noqa: F401
from regward.store.db import normalize_database_url
from regward.store.models import Base

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "REGWARD_DATABASE_URL"
    )
    if not url:
        raise SystemExit("set the database URL with -x url=... or REGWARD_DATABASE_URL")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Write the migration SQL to stdout instead of running it."""
    context.configure(
        url=normalize_database_url(_database_url()),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the connection from `Store.migrate`, or on a new one."""
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    engine = create_engine(normalize_database_url(_database_url()), poolclass=NullPool)
    try:
        with engine.connect() as new_connection:
            _run(new_connection)
            new_connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
