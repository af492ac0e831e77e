"""Run kinds, pull requests and repositories on the run record (DESIGN's round-2 contract):
`kind` (`ticket` | `ci_fix` | `review_fix`), `pr_number`, `parent_run_id` (the run that opened the
PR), `repository` (the routed repository, once there are several) and `hold_reason` (why a run is
`waiting` or `needs_routing`). Existing runs become `ticket` runs with the other fields empty.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a column in place; on PostgreSQL these are plain ALTERs.
    with op.batch_alter_table("ac_runs") as batch:
        batch.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="ticket"))
        batch.add_column(sa.Column("pr_number", sa.Integer))
        batch.add_column(sa.Column("parent_run_id", sa.String(200)))
        batch.add_column(sa.Column("repository", sa.String(200)))
        batch.add_column(sa.Column("hold_reason", sa.Text))
    op.create_index("ix_ac_runs_parent_run_id", "ac_runs", ["parent_run_id"])
    op.create_index("ix_ac_runs_repository", "ac_runs", ["repository"])


def downgrade() -> None:
    op.drop_index("ix_ac_runs_repository", "ac_runs")
    op.drop_index("ix_ac_runs_parent_run_id", "ac_runs")
    with op.batch_alter_table("ac_runs") as batch:
        for name in ("hold_reason", "repository", "parent_run_id", "pr_number", "kind"):
            batch.drop_column(name)
