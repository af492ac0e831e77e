"""The run tables as SQLAlchemy Core objects: the schema at the head migration, for queries.

The tables themselves are created and changed only by the versioned migrations in `migrations/`
(run by `app.services.runner.migrate`); a change here needs a new migration there, and
tests/services/runner/test_migrations.py checks that the two agree.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

runs = sa.Table(
    "ac_runs",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("ticket", sa.String(100), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),  # epoch seconds (ms precision)
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("branch", sa.String(200)),
    sa.Column("pr_url", sa.Text),
    sa.Column("session_id", sa.String(100)),
    # The sums over ac_run_usage, kept on the run for listing (written with every usage row).
    sa.Column("turns", sa.Integer, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("ticket_json", sa.Text, nullable=False),
    # Migration 0003: what kind of run, for which PR and repository, and why it is held.
    sa.Column("kind", sa.String(20), nullable=False, server_default="ticket"),
    sa.Column("pr_number", sa.Integer),
    sa.Column("parent_run_id", sa.String(200), index=True),
    sa.Column("repository", sa.String(200), index=True),
    sa.Column("hold_reason", sa.Text),
    # Migration 0004: the record is the durable accept (see the migration's docstring).
    sa.Column("dedup_key", sa.String(300)),
    sa.Column("enqueued_at", sa.Float),  # epoch seconds of the handoff to the DBOS queue; NULL: not yet
)

# The database refuses a second active run for a dedup key; a final record releases it.
ACTIVE_WHERE = sa.text("status IN ('queued', 'waiting', 'running')")
UNDISPATCHED_WHERE = sa.text("enqueued_at IS NULL AND status = 'queued'")
sa.Index("ux_ac_runs_active_dedup_key", runs.c.dedup_key, unique=True,
         sqlite_where=ACTIVE_WHERE, postgresql_where=ACTIVE_WHERE)
sa.Index("ix_ac_runs_undispatched", runs.c.created_at,
         sqlite_where=UNDISPATCHED_WHERE, postgresql_where=UNDISPATCHED_WHERE)

steps = sa.Table(
    "ac_run_steps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(200), nullable=False, index=True),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("detail_json", sa.Text, nullable=False),
    sa.UniqueConstraint("run_id", "name", name="uq_ac_run_steps_run_name"),
)

logs = sa.Table(
    "ac_run_logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(200), nullable=False, index=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("level", sa.String(10), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)

# One row per agent call: recording a call again (a step re-run after a crash) replaces its row.
usage = sa.Table(
    "ac_run_usage",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("call_id", sa.String(200), primary_key=True),
    sa.Column("turns", sa.Integer, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Column("recorded_at", sa.Float, nullable=False),
)

# Migration 0005: the spend ledger (app/services/spend/): one row per agent call, by token kind, from
# the model proxy's metered figures; recording a call again replaces its row.
spend = sa.Table(
    "ac_spend",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("call_id", sa.String(200), primary_key=True),
    sa.Column("ticket", sa.String(100), nullable=False),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),  # UTC YYYY-MM-DD of the service's clock
    sa.Column("recorded_at", sa.Float, nullable=False),
    sa.Column("model", sa.String(100)),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_creation_input_tokens", sa.BigInteger, nullable=False),
    sa.Column("cache_read_input_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Float, nullable=False),
    sa.Index("ix_ac_spend_day_project", "day", "project"),
    sa.Index("ix_ac_spend_ticket", "ticket"),
)

# Cap notices already sent: one per (scope, period, level), so each is logged and commented once.
spend_notices = sa.Table(
    "ac_spend_notices",
    metadata,
    sa.Column("scope", sa.String(120), primary_key=True),
    sa.Column("period", sa.String(10), primary_key=True),
    sa.Column("level", sa.String(10), primary_key=True),
    sa.Column("sent_at", sa.Float, nullable=False),
    sa.Column("run_id", sa.String(200)),
)

# Migration 0006 (issue 11, app/followups/): GitHub deliveries answered, and the PRs the service
# opened with their follow-up state (see the migration's docstring).
github_deliveries = sa.Table(
    "ac_github_deliveries",
    metadata,
    sa.Column("delivery_id", sa.String(100), primary_key=True),
    sa.Column("event", sa.String(60), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("run_id", sa.String(200)),
    sa.Column("reason", sa.Text),
)

pull_requests = sa.Table(
    "ac_pull_requests",
    metadata,
    sa.Column("repository", sa.String(200), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("ticket", sa.String(100), nullable=False),
    sa.Column("branch", sa.String(200), nullable=False, index=True),
    sa.Column("parent_run_id", sa.String(200), nullable=False),
    sa.Column("html_url", sa.Text),
    sa.Column("state", sa.String(20), nullable=False, index=True),
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
