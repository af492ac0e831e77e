"""kill -9 while a run works, with Jira reporting on: after the restart the run finds its progress
comment again by its marker (the process that posted it, and its memory of the comment id, are
gone) and edits it to the final state — one comment, posted once — and the spend ledger holds each
agent call once. On SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.jira.progress_doc import has_marker
from tests.durability.conftest import EnvBuilder
from tests.durability.service_proc import Procs, db_rows, is_final, step_status
from tests.fakes.jira_api import FakeJira

pytestmark = pytest.mark.slow


def test_kill9_mid_run_keeps_one_progress_comment_and_counts_spend_once(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, database_url: str | None
) -> None:
    ws = tmp_path / "ws"
    script = {"delay_s": 4.0, "tickets": {"PROJ-1": {
        "implement": [{"write": "docs/a.md", "content": "a\n"}], "cost_usd": 0.5,
        "usage": {"input_tokens": 10, "output_tokens": 5}}}}
    with FakeJira(issues={"PROJ-1": "To Do"}).start() as jira:
        env = service_env(ws, script, EXECUTOR_ID="host-p", APP_VERSION="7", DATABASE_URL=database_url,
                          JIRA_BASE_URL=jira.base_url, JIRA_EMAIL=jira.email, JIRA_API_TOKEN=jira.token,
                          JIRA_PROGRESS_TIMEOUT_SEC="5")
        db_url = database_url or f"sqlite:///{ws / 'auto-code.sqlite'}"
        svc = procs.new("service", env, tmp_path / "proc")
        svc.start()
        run_id = svc.deliver("PROJ-1", "Survive a crash")["run_id"]
        svc.wait_run(run_id, lambda r: step_status(r, "implement") == "running" and bool(
            jira.comment_records.get("PROJ-1")), timeout=20, what="implement running, comment posted")
        svc.kill9()

        svc.start()
        after = svc.wait_run(run_id, is_final, timeout=40, what="final status")
    assert after["status"] == "succeeded", after["error"]
    ours = [c for c in jira.comment_records["PROJ-1"] if c["author"]["accountId"] == jira.account_id]
    assert len(ours) == 1 and has_marker(ours[0]["body"], run_id)
    posts = [r for r in jira.requests if r.method == "POST" and r.path == "/rest/api/3/issue/PROJ-1/comment"]
    assert len(posts) == 1
    assert "opened a pull request" in jira.comment_texts("PROJ-1")[0]
    rows = db_rows(db_url, "SELECT call_id, cost_usd, input_tokens FROM ac_spend WHERE run_id = :r", r=run_id)
    assert [(r["call_id"], r["cost_usd"], r["input_tokens"]) for r in rows] == [("implement", 0.5, 10)]
