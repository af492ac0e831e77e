"""Baseline: the run tables exactly as `RunStore.create_schema()` made them before migrations
(databases created that way are stamped at this revision, not re-created).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ac_runs",
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("ticket", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("branch", sa.String(200)),
        sa.Column("pr_url", sa.Text),
        sa.Column("session_id", sa.String(100)),
        sa.Column("turns", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("ticket_json", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index("ix_ac_runs_created_at", "ac_runs", ["created_at"])
    op.create_index("ix_ac_runs_status", "ac_runs", ["status"])
    op.create_index("ix_ac_runs_ticket", "ac_runs", ["ticket"])
    op.create_table(
        "ac_run_steps",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("detail_json", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "name", name="uq_ac_run_steps_run_name"),
    )
    op.create_index("ix_ac_run_steps_run_id", "ac_run_steps", ["run_id"])
    op.create_table(
        "ac_run_logs",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ac_run_logs_run_id", "ac_run_logs", ["run_id"])


def downgrade() -> None:
    for table in ("ac_run_logs", "ac_run_steps", "ac_runs"):
        op.drop_table(table)
