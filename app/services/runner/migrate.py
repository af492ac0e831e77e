"""Versioned migrations of the run tables (Alembic), run under a lock at every start.

Several hosts may start at once on a fresh database. Creating a table concurrently is not safe on
PostgreSQL (two `CREATE TABLE` race on the catalog: `UniqueViolation: pg_type_typname_nsp_index`),
so every host migrates under one lock and the second host finds the schema at head:
- PostgreSQL: a session-level advisory lock (SCHEMA_LOCK_KEY, taken by polling, see
  `_pg_schema_lock`); the migration runs in one transaction (PostgreSQL DDL is transactional). The
  lock is still held while `then` runs (the engine passes DBOS's launch, which migrates DBOS's own
  tables), then released. A host that dies while holding it loses its session, and the lock.
- SQLite: `BEGIN IMMEDIATE` (the database's write lock) opens the migrating transaction, so a second
  process waits (busy timeout) and then sees the version written. `then` runs after the commit:
  DBOS's SQLite migration takes the same write lock itself, and would wait on ours forever.

A database made by the old `create_schema()` (run tables, no version table) is stamped at the
baseline revision, which has exactly that DDL, and then upgraded: the run history stays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
SCHEMA_LOCK_TIMEOUT_SEC = 300.0  # a host migrating (and launching DBOS) takes about a second
LOCK_POLL_SEC = 0.1
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


@contextmanager
def _pg_schema_lock(engine: sa.Engine) -> Iterator[None]:
    """The session-level advisory lock, on its own AUTOCOMMIT connection, taken by polling
    `pg_try_advisory_lock`: a host blocked inside `pg_advisory_lock` would be a transaction that
    never ends, and DBOS's `CREATE INDEX CONCURRENTLY` (run by the holder) waits for every older
    transaction to end - a deadlock PostgreSQL does not detect. (DBOS takes its own lock the same way.)"""
    deadline = time.monotonic() + SCHEMA_LOCK_TIMEOUT_SEC
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock_conn:
        while not lock_conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"),
                                    {"key": SCHEMA_LOCK_KEY}).scalar():
            if time.monotonic() > deadline:
                raise TimeoutError(f"schema lock {SCHEMA_LOCK_KEY} (pg_advisory_lock) still held by another "
                                   f"host after {SCHEMA_LOCK_TIMEOUT_SEC:.0f}s; see pg_locks")
            time.sleep(LOCK_POLL_SEC)
        try:
            yield
        finally:
            lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})


def upgrade_schema(engine: sa.Engine, then: Callable[[], None] | None = None) -> str:
    """Bring the run tables to the head revision under the schema lock; returns the revision.
    `then` runs after the migration, under the lock on PostgreSQL (see the module docstring)."""
    if engine.dialect.name == "postgresql":
        with _pg_schema_lock(engine):
            with engine.begin() as conn:
                revision = _migrate_locked(conn)
            if then is not None:
                then()
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
