"""The handoff's batch enqueue through app/services/runner/dbos_batch.py: DBOS's `init_workflows`
writes exactly the rows its own `_insert_rows` writes (every column but the workflow id and the
times), stays idempotent per workflow id, and really takes the compiled-once path; on SQLite and
PostgreSQL. The workflows go on a queue no worker polls, so nothing runs them."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dbos._core import prepare_enqueued_workflow
from dbos._dbos import _get_dbos_instance

from app.models import Ticket
from app.services.runner.dbos_batch import CompiledOnce
from tests.services.runner.harness import running_service
from tests.services.runner.test_legacy_queue import engine_of

IDLE_QUEUE = "dbos-batch-test"  # registered by no one: its workflows stay ENQUEUED
VARIES = {"workflow_uuid", "created_at", "updated_at", "retention_timestamp"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgres":
        return {"DATABASE_URL": request.getfixturevalue("pg_database")}
    return {}


def _rows(sys_db: Any, table: sa.Table, ids: list[str]) -> list[dict[str, Any]]:
    with sys_db.engine.connect() as conn:
        found = conn.execute(sa.select(table).where(table.c.workflow_uuid.in_(ids))
                             .order_by(table.c.workflow_uuid)).mappings().all()
    return [{k: v for k, v in row.items() if k not in VARIES} for row in found]


def test_batch_enqueue_writes_what_dbos_writes(tmp_path: Path, database_env: dict[str, str]) -> None:
    with running_service(tmp_path, **database_env) as svc:
        engine, dbos = engine_of(svc), _get_dbos_instance()
        sys_db = dbos._sys_db
        override = sys_db._insert_rows
        assert isinstance(override, CompiledOnce)
        prefix = uuid.uuid4().hex[:6]

        def statuses(tag: str) -> tuple[list[str], list[Any]]:
            ids = [f"{prefix}-{n}-{tag}" for n in range(3)]
            args = [(Ticket(key=f"PROJ-{n}", summary=f"s {n}").model_dump(mode="json"),) for n in range(3)]
            return ids, [prepare_enqueued_workflow(dbos, engine.runner.run_ticket, args[n], {},
                                                   queue_name=IDLE_QUEUE, workflow_id=i,
                                                   queue_partition_key=f"repo-{n % 2}")
                         for n, i in enumerate(ids)]

        def write(batch: list[Any]) -> set[str]:
            return svc.client.portal.call(asyncio.to_thread, sys_db.init_workflows, batch)  # type: ignore[union-attr, no-any-return]

        mine, mine_statuses = statuses("a")
        before = override.batches
        assert write(mine_statuses) == set(mine)
        assert override.batches == before + 2  # workflow_status and workflow_input, one template each
        assert write(mine_statuses) == set()  # the same ids again: nothing new, nothing raised

        theirs, their_statuses = statuses("b")
        del sys_db._insert_rows  # DBOS's own, for the comparison
        try:
            assert write(their_statuses) == set(theirs)
        finally:
            sys_db._insert_rows = override

        for table in (sys_db.tables.workflow_status, sys_db.tables.workflow_input):
            assert _rows(sys_db, table, mine) == _rows(sys_db, table, theirs)
            assert len(_rows(sys_db, table, mine)) == 3
