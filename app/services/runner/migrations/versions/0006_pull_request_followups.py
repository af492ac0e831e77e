"""After the PR (issue 11): GitHub deliveries already handled, and the pull requests the service
opened with their follow-up state.

- `ac_github_deliveries`: one row per `X-GitHub-Delivery` GUID answered, with the answer given
  (queued/duplicate/ignored, run id, reason): a redelivery (same GUID) gets the same answer and
  starts nothing. Written after the answer is decided, so a crash before it loses no delivery (the
  follow-up's own dedup key still makes duplicates one run).
- `ac_pull_requests`: per (repository, number) the ticket, branch and run that opened it; its life
  (`state` open | merged | closed, `opened_at`, `closed_at`); the follow-up counters the limits read
  (`ci_rounds`, `review_rounds`, `ci_signature` of the last failing-job set, `reruns` as JSON
  ["<sha>:<job name>"], `cost_usd` of all follow-ups); `stop_reason` once a limit ended the loop;
  `busy_run_id`, the follow-up currently working on the branch (follow-ups of one PR run one at a
  time); `etags` (JSON) for the polling fallback's conditional requests.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ac_github_deliveries",
        sa.Column("delivery_id", sa.String(100), primary_key=True),
        sa.Column("event", sa.String(60), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("run_id", sa.String(200)),
        sa.Column("reason", sa.Text),
    )
    op.create_table(
        "ac_pull_requests",
        sa.Column("repository", sa.String(200), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("ticket", sa.String(100), nullable=False),
        sa.Column("branch", sa.String(200), nullable=False),
        sa.Column("parent_run_id", sa.String(200), nullable=False),
        sa.Column("html_url", sa.Text),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("opened_at", sa.Float, nullable=False),
        sa.Column("closed_at", sa.Float),
        sa.Column("ci_rounds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("review_rounds", sa.Integer, nullable=False, server_default="0"),
        sa.Column("ci_signature", sa.Text),
        sa.Column("reruns", sa.Text, nullable=False, server_default="[]"),
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("stop_reason", sa.Text),
        sa.Column("busy_run_id", sa.String(200)),
        sa.Column("etags", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_ac_pull_requests_branch", "ac_pull_requests", ["branch"])
    op.create_index("ix_ac_pull_requests_state", "ac_pull_requests", ["state"])


def downgrade() -> None:
    op.drop_index("ix_ac_pull_requests_state", "ac_pull_requests")
    op.drop_index("ix_ac_pull_requests_branch", "ac_pull_requests")
    op.drop_table("ac_pull_requests")
    op.drop_table("ac_github_deliveries")
