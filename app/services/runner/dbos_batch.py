"""The dispatcher's DBOS batch enqueue, compiled once: one override of a dbos 3.4 hook.

`SystemDatabase.init_workflows` (the batch enqueue the dispatcher's handoff uses, engine._enqueue)
writes a batch's `workflow_status` and `workflow_input` rows as one `.values([...])` INSERT each.
SQLAlchemy never caches a multi-values statement: it compiles it anew for every batch, about 30
bound parameters per row in Python, and that compile was the largest CPU cost per accepted delivery
(bench/webhook_latency.py, README's Performance). DBOS sends those INSERTs through
`_insert_rows(conn, build, rows, returning=)`, its hook for a subclass that inserts differently.
`install` overrides it on the process's system database: a batch whose one-row statement renders
exactly as one of the two enqueue INSERTs (same table, columns, ON CONFLICT DO NOTHING on the
workflow id, RETURNING) is executed as that statement with the rows as its parameters - SQLAlchemy's
"insertmanyvalues": the same multi-row VALUES on the wire, in the rows' order, compiled once per
process. Anything else (another table, another shape, a sharded database, rows of unlike columns)
goes through DBOS's own `_insert_rows` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from dbos._sys_db import SystemDatabase

Build = Callable[[list[dict[str, Any]]], sa.Executable]


class CompiledOnce:
    """The `_insert_rows` override (see the module docstring); `templates` are the statements it
    may run as executemany, keyed by their table."""

    def __init__(self, sys_db: SystemDatabase) -> None:
        self._own = sys_db._insert_rows
        conflict = sys_db._key_conflict("workflow_uuid")
        status, inputs = sys_db.tables.workflow_status, sys_db.tables.workflow_input
        self.templates: dict[sa.Table, Any] = {
            status: sys_db.dialect.insert(status).on_conflict_do_nothing(index_elements=conflict)
            .returning(status.c.workflow_uuid),
            inputs: sys_db.dialect.insert(inputs).on_conflict_do_nothing(index_elements=conflict),
        }
        # (table, columns, dialect) -> the template's one-row SQL, to compare a batch's with
        self._rendered: dict[tuple[sa.Table, tuple[str, ...], str], str] = {}
        self.batches = 0  # batches written through a template (for tests)

    def __call__(self, conn: Any, build: Build, rows: list[dict[str, Any]], *,
                 returning: bool = False) -> list[sa.Row[Any]]:
        template = self._template(conn, build, rows) if len(rows) > 1 else None
        if template is None:
            return self._own(conn, build, rows, returning=returning)
        result = conn.execute(template, rows)
        self.batches += 1
        return list(result) if returning else []

    def _template(self, conn: Any, build: Build, rows: list[dict[str, Any]]) -> Any:
        """The template that writes `rows` exactly as `build(rows)` would, or None."""
        columns = tuple(rows[0])
        if any(tuple(row) != columns for row in rows):
            return None
        probe: Any = build(rows[:1])  # one row: a cheap compile, once per batch
        template = self.templates.get(getattr(probe, "table", None))  # type: ignore[arg-type]
        if template is None:
            return None
        dialect = conn.dialect
        key = (probe.table, columns, dialect.name)
        if key not in self._rendered:
            self._rendered[key] = str(template.values(rows[:1]).compile(dialect=dialect))
        return template if str(probe.compile(dialect=dialect)) == self._rendered[key] else None


def install(sys_db: SystemDatabase) -> bool:
    """Override `_insert_rows` on this system database; False (nothing done) when its class has its
    own (a sharded database inserts row by row)."""
    if type(sys_db)._insert_rows is not SystemDatabase._insert_rows:
        return False
    sys_db._insert_rows = CompiledOnce(sys_db)  # type: ignore[method-assign]
    return True
