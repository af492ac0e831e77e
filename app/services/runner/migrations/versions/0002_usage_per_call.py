"""Usage per agent call: `ac_run_usage` (run_id, call_id) so a step re-run after a crash replaces its
calls' turns and cost instead of adding them again. A run's existing totals become one `legacy`
call, so `turns`/`cost_usd` (the sums) keep their values.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ac_run_usage",
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("call_id", sa.String(200), nullable=False),
        sa.Column("turns", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "call_id"),
    )
    op.execute(
        "INSERT INTO ac_run_usage (run_id, call_id, turns, cost_usd, recorded_at) "
        "SELECT run_id, 'legacy', turns, cost_usd, updated_at FROM ac_runs "
        "WHERE turns <> 0 OR cost_usd <> 0"
    )


def downgrade() -> None:
    op.drop_table("ac_run_usage")
