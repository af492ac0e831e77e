"""Spend you can trust (issue 13): the model's own usage per agent call, by token kind, and the cap
notices already sent.

- `ac_spend`: one row per agent call (run_id, call_id), written from the model proxy's metered
  figures; recording the same call again (a step re-run after a crash) replaces its row, so a
  replay never counts twice. `ticket`, `project` and the UTC `day` (YYYY-MM-DD, of the service's
  clock when the call was recorded) are stored so per-ticket, per-project, per-day and per-month
  sums are plain indexed queries.
- `ac_spend_notices`: one row per (scope, period, level) — e.g. ("project:PROJ", "2026-12-01",
  "warn") — so a cap warning is logged and commented once, even with several hosts.
Existing runs' spend (`ac_run_usage`, cost only) is not back-filled: their token kinds are unknown.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ac_spend",
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("call_id", sa.String(200), nullable=False),
        sa.Column("ticket", sa.String(100), nullable=False),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
        sa.Column("model", sa.String(100)),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_creation_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_read_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "call_id"),
    )
    op.create_index("ix_ac_spend_day_project", "ac_spend", ["day", "project"])
    op.create_index("ix_ac_spend_ticket", "ac_spend", ["ticket"])
    op.create_table(
        "ac_spend_notices",
        sa.Column("scope", sa.String(120), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("sent_at", sa.Float, nullable=False),
        sa.Column("run_id", sa.String(200)),
        sa.PrimaryKeyConstraint("scope", "period", "level"),
    )


def downgrade() -> None:
    op.drop_table("ac_spend_notices")
    op.drop_index("ix_ac_spend_ticket", "ac_spend")
    op.drop_index("ix_ac_spend_day_project", "ac_spend")
    op.drop_table("ac_spend")
