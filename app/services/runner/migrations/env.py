"""Alembic environment: migrations run only on the connection `migrate.upgrade_schema` hands over,
inside the transaction it opened under its lock (so `begin_transaction` below adds none)."""

from __future__ import annotations

from alembic import context

from app.services.runner.migrate import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
