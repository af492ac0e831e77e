"""Intake at the speed of one insert (issue 10): the run record is the durable accept.

- `dedup_key`: what a run is deduplicated by (the ticket key for a ticket run; a follow-up run names
  its own). A partial unique index over the active statuses (queued | waiting | running) lets the
  database refuse a second active run for a key; a run whose record is final releases its key at
  once. SQLite and PostgreSQL both have partial indexes.
- `enqueued_at`: when the engine's dispatcher handed the run to the DBOS queue (epoch seconds); NULL
  while the record waits for its handoff. A partial index keeps the dispatcher's look-up for such
  records small.
Existing runs keep their history: every record gets its ticket as its dedup key and counts as handed
off (the old intake enqueued before writing the record). Should two active records of one ticket
exist (a stale record), only the newest keeps the key, so the unique index can be built.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ACTIVE = "status IN ('queued', 'waiting', 'running')"
UNDISPATCHED = "enqueued_at IS NULL AND status = 'queued'"


def upgrade() -> None:
    with op.batch_alter_table("ac_runs") as batch:
        batch.add_column(sa.Column("dedup_key", sa.String(300)))
        batch.add_column(sa.Column("enqueued_at", sa.Float))
    op.execute("UPDATE ac_runs SET dedup_key = ticket, enqueued_at = created_at")
    op.execute(
        f"UPDATE ac_runs SET dedup_key = NULL WHERE {ACTIVE} AND EXISTS ("  # noqa: S608 - constants
        f"SELECT 1 FROM ac_runs newer WHERE newer.ticket = ac_runs.ticket AND newer.{ACTIVE} AND "
        "(newer.created_at > ac_runs.created_at OR "
        "(newer.created_at = ac_runs.created_at AND newer.run_id > ac_runs.run_id)))"
    )
    op.create_index("ux_ac_runs_active_dedup_key", "ac_runs", ["dedup_key"], unique=True,
                    sqlite_where=sa.text(ACTIVE), postgresql_where=sa.text(ACTIVE))
    op.create_index("ix_ac_runs_undispatched", "ac_runs", ["created_at"],
                    sqlite_where=sa.text(UNDISPATCHED), postgresql_where=sa.text(UNDISPATCHED))


def downgrade() -> None:
    op.drop_index("ix_ac_runs_undispatched", "ac_runs")
    op.drop_index("ux_ac_runs_active_dedup_key", "ac_runs")
    with op.batch_alter_table("ac_runs") as batch:
        batch.drop_column("enqueued_at")
        batch.drop_column("dedup_key")
