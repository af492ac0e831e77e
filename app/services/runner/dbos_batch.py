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
process. The comparison itself is made once per DBOS call site (its lambda) and column set.
Anything else (another table, another shape, a sharded database, rows of unlike columns) goes
through DBOS's own `_insert_rows` unchanged.
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
        self._sys_db = sys_db
        conflict = sys_db._key_conflict("workflow_uuid")
        status, inputs = sys_db.tables.workflow_status, sys_db.tables.workflow_input
        self.templates: dict[sa.Table, Any] = {
            status: sys_db.dialect.insert(status).on_conflict_do_nothing(index_elements=conflict)
            .returning(status.c.workflow_uuid),
            inputs: sys_db.dialect.insert(inputs).on_conflict_do_nothing(index_elements=conflict),
        }
        # (the building lambda's code, columns, dialect) -> its template, or None: a lambda whose
        # only free variable is the system database (DBOS's are) is fixed code over fixed tables and
        # dialect, so one comparison per call site and column set holds for every batch after it
        self._checked: dict[tuple[object, tuple[str, ...], str], Any] = {}
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
        """The template that writes `rows` exactly as `build(rows)` would, or None. Checked once
        per call site and column set: `build(rows[:1])` must render (one row, this dialect) as the
        template with that row does."""
        columns = tuple(rows[0])
        if any(tuple(row) != columns for row in rows):
            return None
        fixed = (getattr(build, "__defaults__", ()) is None and hasattr(build, "__code__")
                 and all(cell.cell_contents is self._sys_db for cell in build.__closure__ or ()))
        key = (getattr(build, "__code__", None), columns, conn.dialect.name)
        if fixed and key in self._checked:
            return self._checked[key]
        probe: Any = build(rows[:1])
        template = self.templates.get(getattr(probe, "table", None))  # type: ignore[arg-type]
        same = template is not None and (str(probe.compile(dialect=conn.dialect))
                                         == str(template.values(rows[:1]).compile(dialect=conn.dialect)))
        if fixed:
            self._checked[key] = template if same else None
        return template if same else None


def install(sys_db: SystemDatabase) -> bool:
    """Override `_insert_rows` on this system database; False (nothing done) when its class has its
    own (a sharded database inserts row by row)."""
    if type(sys_db)._insert_rows is not SystemDatabase._insert_rows:
        return False
    sys_db._insert_rows = CompiledOnce(sys_db)  # type: ignore[method-assign]
    return True
