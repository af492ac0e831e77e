"""Versioned migrations of the run tables: a database made by the old `create_schema()` is adopted and
upgraded with its history intact; a fresh one reaches head; the head schema is what the store
queries (tables.py); upgrading twice changes nothing. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.services.runner.migrate import VERSION_TABLE, current_revision, head_revision, upgrade_schema
from app.services.runner.store import SqlRunStore, make_engine
from app.services.runner.tables import metadata

# `create_schema()` as of 38d66f6 (SQLAlchemy's CREATE statements for its MetaData, per dialect).
_HEAD_DDL = """
CREATE TABLE ac_run_logs (
	id {serial} NOT NULL,
	run_id VARCHAR(200) NOT NULL,
	ts FLOAT NOT NULL,
	level VARCHAR(10) NOT NULL,
	message TEXT NOT NULL,
	PRIMARY KEY (id)
);
CREATE INDEX ix_ac_run_logs_run_id ON ac_run_logs (run_id);
CREATE TABLE ac_run_steps (
	id {serial} NOT NULL,
	run_id VARCHAR(200) NOT NULL,
	name VARCHAR(40) NOT NULL,
	status VARCHAR(20) NOT NULL,
	started_at FLOAT,
	finished_at FLOAT,
	detail_json TEXT NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_ac_run_steps_run_name UNIQUE (run_id, name)
);
CREATE INDEX ix_ac_run_steps_run_id ON ac_run_steps (run_id);
CREATE TABLE ac_runs (
	run_id VARCHAR(200) NOT NULL,
	ticket VARCHAR(100) NOT NULL,
	status VARCHAR(20) NOT NULL,
	created_at FLOAT NOT NULL,
	updated_at FLOAT NOT NULL,
	branch VARCHAR(200),
	pr_url TEXT,
	session_id VARCHAR(100),
	turns INTEGER NOT NULL,
	cost_usd FLOAT NOT NULL,
	error TEXT,
	ticket_json TEXT NOT NULL,
	PRIMARY KEY (run_id)
);
CREATE INDEX ix_ac_runs_created_at ON ac_runs (created_at);
CREATE INDEX ix_ac_runs_status ON ac_runs (status);
CREATE INDEX ix_ac_runs_ticket ON ac_runs (ticket);
"""

_OLD_ROWS = """
INSERT INTO ac_runs (run_id, ticket, status, created_at, updated_at, branch, pr_url, session_id, turns,
  cost_usd, error, ticket_json)
VALUES ('PROJ-1:old', 'PROJ-1', 'succeeded', 1700000000.5, 1700000100.25, 'ticket/proj-1',
  'https://github.test/o/r/pull/7', 'sess-old', 12, 0.42, NULL, '{"key": "PROJ-1"}');
INSERT INTO ac_runs (run_id, ticket, status, created_at, updated_at, turns, cost_usd, ticket_json)
VALUES ('PROJ-2:old', 'PROJ-2', 'failed', 1700000200.0, 1700000300.0, 0, 0.0, '{"key": "PROJ-2"}');
INSERT INTO ac_run_steps (run_id, name, status, started_at, finished_at, detail_json)
VALUES ('PROJ-1:old', 'prepare', 'succeeded', 1700000001.0, 1700000002.0, '{"path": "/w/t"}');
INSERT INTO ac_run_logs (run_id, ts, level, message)
VALUES ('PROJ-1:old', 1700000001.5, 'info', 'run_started');
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    url = request.getfixturevalue("pg_database") if request.param == "postgres" else (
        f"sqlite:///{tmp_path / 'runs.sqlite'}")
    eng = make_engine(url)
    try:
        yield eng
    finally:
        eng.dispose()


def _run_script(engine: sa.Engine, script: str) -> None:
    serial = "SERIAL" if engine.dialect.name == "postgresql" else "INTEGER"
    with engine.begin() as conn:
        for statement in script.format(serial=serial).split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)


def test_a_database_from_the_old_create_schema_keeps_its_runs(engine: sa.Engine) -> None:
    _run_script(engine, _HEAD_DDL)
    _run_script(engine, _OLD_ROWS.replace("{", "{{").replace("}", "}}"))
    assert current_revision(engine) is None

    assert upgrade_schema(engine) == head_revision()

    store = SqlRunStore(engine)
    old = store.get_run("PROJ-1:old")
    assert old is not None
    assert (old.status, old.branch, old.pr_url, old.session_id, old.turns, old.cost_usd) == (
        "succeeded", "ticket/proj-1", "https://github.test/o/r/pull/7", "sess-old", 12, 0.42)
    assert old.created_at.timestamp() == 1700000000.5
    assert [(s.name, s.status, s.detail) for s in old.steps] == [("prepare", "succeeded", {"path": "/w/t"})]
    assert [line.message for line in store.logs_after("PROJ-1:old")] == ["run_started"]
    assert [r.run_id for r in store.list_runs()] == ["PROJ-2:old", "PROJ-1:old"]
    # The old totals became one call: a new call adds to them, nothing is lost or doubled.
    store.add_usage("PROJ-1:old", turns=3, cost_usd=0.08, session_id=None, call_id="implement")
    row = store.get_run_row("PROJ-1:old")
    assert row is not None and (row.turns, round(row.cost_usd, 6)) == (15, 0.5)
    # New runs work next to the old ones; ids of the old serial columns continue.
    assert store.create_run("PROJ-3:new", "PROJ-3", "{}")
    store.add_log("PROJ-3:new", "hello")
    assert [line.id for line in store.logs_after("PROJ-3:new")] == [2]


def test_fresh_database_reaches_head_and_matches_the_tables_the_store_uses(engine: sa.Engine) -> None:
    assert upgrade_schema(engine) == head_revision() == current_revision(engine)
    assert upgrade_schema(engine) == head_revision()  # again: nothing to do
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_then_runs_after_the_migration(engine: sa.Engine) -> None:
    seen: list[str | None] = []
    upgrade_schema(engine, then=lambda: seen.append(current_revision(engine)))
    assert seen == [head_revision()]
