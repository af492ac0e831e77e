"""Versioned migrations of the run tables (Alembic), run under a lock at every start.

Several hosts may start at once on a fresh database. Creating a table concurrently is not safe on
PostgreSQL (two `CREATE TABLE` race on the catalog: `UniqueViolation: pg_type_typname_nsp_index`),
so every host migrates under one lock and the second host finds the schema at head:
- PostgreSQL: a session-level `pg_advisory_lock(SCHEMA_LOCK_KEY)` on the migrating connection; the
  migration runs in one transaction (PostgreSQL DDL is transactional). The lock is still held while
  `then` runs (the engine passes DBOS's launch, which migrates DBOS's own tables), then released.
  A host that dies while holding it loses its session, and with it the lock.
- SQLite: `BEGIN IMMEDIATE` (the database's write lock) opens the migrating transaction, so a second
  process waits (busy timeout) and then sees the version written. `then` runs after the commit:
  DBOS's SQLite migration takes the same write lock itself, and would wait on ours forever.

A database made by the old `create_schema()` (run tables, no version table) is stamped at the
baseline revision, which has exactly that DDL, and then upgraded: the run history stays.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

log = logging.getLogger(__name__)

VERSION_TABLE = "ac_schema_version"
BASELINE = "0001"
# pg_advisory_lock key (any bigint, unique to this purpose): int.from_bytes(b"acschema") - 2**63.
SCHEMA_LOCK_KEY = int.from_bytes(b"acschema", "big") - 2**63
_SCRIPTS = Path(__file__).with_name("migrations")


def _config(conn: sa.Connection | None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config(None)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _migrate_locked(conn: sa.Connection) -> str:
    """Inside the locked transaction: adopt a pre-migration database, then upgrade to head."""
    cfg = _config(conn)
    tables = set(sa.inspect(conn).get_table_names())
    if VERSION_TABLE not in tables and "ac_runs" in tables:
        log.info("schema_adopted", extra={"revision": BASELINE})
        command.stamp(cfg, BASELINE)
    before = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    command.upgrade(cfg, "head")
    after = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if before != after:
        log.info("schema_migrated", extra={"from_revision": before, "to_revision": after})
    return after or ""


def upgrade_schema(engine: sa.Engine, then: Callable[[], None] | None = None) -> str:
    """Bring the run tables to the head revision under the schema lock; returns the revision.
    `then` runs after the migration, under the lock on PostgreSQL (see the module docstring)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            conn.commit()  # a session lock: it outlives this transaction, and needs no open one
            try:
                with conn.begin():
                    revision = _migrate_locked(conn)
                if then is not None:
                    then()
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
                conn.commit()
        return revision
    with engine.connect() as conn:
        with conn.begin():
            if engine.dialect.name == "sqlite":
                # pysqlite opens no transaction before DDL: take the write lock explicitly.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            revision = _migrate_locked(conn)
    if then is not None:
        then()
    return revision
