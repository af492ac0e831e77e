"""Spend caps through whole runs (the real app, DBOS on SQLite, real git, the scripted Claude whose
calls report a metered cost): a warning at 80% is logged and commented once; a run that would start
past a cap waits (`waiting`, with the reason, and says so in its Jira comment) instead of starting;
a new UTC day (the injected clock moves: no sleeping) or a raised cap starts it; a project's cap
holds only that project; a monthly cap outlives the day."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from app.composition import Collaborators
from app.services.spend import CapPolicy
from tests.fakes.jira_api import FakeJira
from tests.services.runner.harness import Service, running_service


class Clock:
    """The service's spend clock: tests move it instead of waiting for midnight."""

    def __init__(self, when: str) -> None:
        self.set(when)

    def __call__(self) -> float:
        return self.now

    def set(self, when: str) -> None:
        self.now = datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()


def _costing(**costs: float) -> dict[str, Any]:
    write = [{"write": "docs/tickets/{slug}.md", "content": "# {key}\n"}]
    return {"tickets": {key.replace("_", "-"): {"implement": write, "cost_usd": cost,
                                                "usage": {"input_tokens": 1000, "output_tokens": 100,
                                                          "cache_read_input_tokens": 5000}}
                        for key, cost in costs.items()}}


def _until_status(svc: Service, run_id: str, wanted: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = svc.client.get(f"/runs/{run_id}").json()
        if run["status"] == wanted:
            return run
        assert run["status"] in ("queued", "running", "waiting"), run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never became {wanted}: {run}")


@pytest.fixture
def jira():
    with FakeJira(issues={f"PROJ-{n}": "To Do" for n in range(70, 80)}).start() as fake:
        yield fake


def _jira_env(jira: FakeJira) -> dict[str, Any]:
    return {"JIRA_BASE_URL": jira.base_url, "JIRA_EMAIL": jira.email, "JIRA_API_TOKEN": jira.token,
            "JIRA_PROGRESS_TIMEOUT_SEC": 5}


def test_warning_at_80_percent_is_logged_and_commented_once(tmp_path: Path, jira: FakeJira,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock("2026-12-01T12:00:00")
    with caplog.at_level(logging.WARNING, logger="app.services.spend.guard"), running_service(
            tmp_path, _costing(PROJ_70=0.85, PROJ_71=0.05),
            collaborators=lambda s: Collaborators(clock=clock),
            SPEND_CAP_DAILY_USD=1.0, **_jira_env(jira)) as svc:
        first = svc.run("PROJ-70")
        second = svc.run("PROJ-71")
        svc.client.portal.call(svc.services.deps.progress.idle)  # the notice is posted in the background
    assert first["status"] == second["status"] == "succeeded"
    warnings = [r for r in caplog.records if r.getMessage() == "spend_cap_warning"]
    assert len(warnings) == 1 and warnings[0].scope == "global" and warnings[0].period == "2026-12-01"
    notices = [t for key in ("PROJ-70", "PROJ-71") for t in jira.comment_texts(key) if "spend warning" in t]
    assert len(notices) == 1
    assert "daily spend cap of $1.00 for all projects: $0.85 spent (85%)" in notices[0]
    later = jira.comment_texts("PROJ-71")
    assert later and not any("spend warning" in t for t in later)


def test_a_run_past_the_daily_cap_waits_and_a_new_day_starts_it(tmp_path: Path, jira: FakeJira) -> None:
    clock = Clock("2026-12-01T12:00:00")
    with running_service(tmp_path, _costing(PROJ_72=1.00, PROJ_73=0.10),
                         collaborators=lambda s: Collaborators(clock=clock), SPEND_CAP_DAILY_USD=1.0,
                         SPEND_CHECK_INTERVAL_SEC=0.05, **_jira_env(jira)) as svc:
        assert svc.run("PROJ-72")["status"] == "succeeded"  # started under the cap; reaches it
        held_id = svc.deliver("PROJ-73")["run_id"]
        held = _until_status(svc, held_id, "waiting")
        assert held["hold_reason"].startswith("daily spend cap of $1.00 for all projects: $1.00 spent")
        assert not [c for c in svc.claude.calls if c.ticket_key == "PROJ-73"]  # the agent never started
        assert [s["name"] for s in held["steps"]] == []
        svc.client.portal.call(svc.services.deps.progress.idle)
        (comment,) = jira.comment_texts("PROJ-73")
        assert "waiting before it starts" in comment and "daily spend cap of $1.00" in comment

        clock.set("2026-12-02T00:00:05")  # a new UTC day: the daily sum starts from zero
        done = svc.wait(held_id)
    assert done["status"] == "succeeded" and done["hold_reason"] is None
    assert "a spend cap has room again: the run starts" in svc.logs(held_id)
    (comment,) = jira.comment_texts("PROJ-73")
    assert "opened a pull request" in comment


def test_a_project_cap_holds_that_project_only_and_raising_it_starts_the_run(tmp_path: Path) -> None:
    clock = Clock("2026-12-01T12:00:00")
    with running_service(tmp_path, _costing(PROJ_1=2.0), collaborators=lambda s: Collaborators(clock=clock),
                         SPEND_PROJECT_DAILY_CAPS_USD="PROJ=2", SPEND_CHECK_INTERVAL_SEC=0.05) as svc:
        assert svc.run("PROJ-1")["status"] == "succeeded"
        other = svc.run("OPS-1")
        held_id = svc.deliver("PROJ-2")["run_id"]
        held = _until_status(svc, held_id, "waiting")
        assert "daily spend cap of $2.00 for project PROJ" in held["hold_reason"]
        guard = svc.services.deps.spend
        guard.ledger.policy = CapPolicy(project_daily_usd={"PROJ": 5.0})  # the operator raised it
        done = svc.wait(held_id)
    assert other["status"] == "succeeded"  # another project's runs were never held
    assert done["status"] == "succeeded"


def test_a_monthly_cap_outlives_the_day_and_a_new_month_starts_the_run(tmp_path: Path) -> None:
    clock = Clock("2026-11-30T12:00:00")
    with running_service(tmp_path, _costing(PROJ_1=3.0), collaborators=lambda s: Collaborators(clock=clock),
                         SPEND_CAP_MONTHLY_USD=3.0, SPEND_CHECK_INTERVAL_SEC=0.05) as svc:
        assert svc.run("PROJ-1")["status"] == "succeeded"
        held_id = svc.deliver("PROJ-2")["run_id"]
        assert "monthly spend cap" in _until_status(svc, held_id, "waiting")["hold_reason"]
        clock.set("2026-12-01T00:00:01")  # a new day AND a new month
        assert svc.wait(held_id)["status"] == "succeeded"
        clock.set("2026-12-02T00:00:01")
        ledger = svc.services.deps.spend.ledger
        spent = svc.client.portal.call(ledger.ticket_total, "PROJ-1")
    assert spent.cost_usd == pytest.approx(3.0)
    assert spent.tokens.as_dict() == {"input": 1000, "output": 100, "cache_creation": 0, "cache_read": 5000}


def test_every_agent_call_of_a_run_is_in_the_ledger_by_token_kind(tmp_path: Path) -> None:
    # implement, the review session (a separate call) and nothing else; each with the metered
    # figures its call reported. The run's own cost (the runs API) is the ledger's sum.
    with running_service(tmp_path, _costing(PROJ_5=0.2), ENABLE_REVIEW=1) as svc:
        run = svc.run("PROJ-5")
        query = sa.text("SELECT call_id, cost_usd, input_tokens, output_tokens, cache_read_input_tokens "
                        "FROM ac_spend WHERE run_id = :r ORDER BY call_id")
        with svc.services.store.sync.engine.connect() as conn:
            rows = conn.execute(query, {"r": run["run_id"]}).all()
        total = svc.client.portal.call(svc.services.deps.spend.ledger.run_total, run["run_id"])
    assert run["status"] == "succeeded"
    assert [tuple(r) for r in rows] == [("implement", 0.2, 1000, 100, 5000),
                                        ("review:0", 0.2, 1000, 100, 5000)]
    assert total.cost_usd == pytest.approx(run["cost_usd"]) == pytest.approx(0.4)
