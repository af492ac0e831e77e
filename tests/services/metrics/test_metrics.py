"""`/metrics` after real runs: names and values of this process's counters and histograms
(deliveries by outcome, runs by final status, step durations, queue wait, model tokens and cost),
the shared-state gauges read from the database (a record written by "another host" counts), no
ticket key or text in any label, and one registry per app (two apps in one process never mix)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from tests.gitrepos import make_remote, workspace_settings
from tests.services.runner.harness import running_service


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_after_a_run(tmp_path: Path) -> None:
    usage = {"input_tokens": 1200, "output_tokens": 300, "cache_creation_input_tokens": 50,
             "cache_read_input_tokens": 7000}
    script = {"tickets": {"PROJ-90": {"implement": [{"write": "x.md", "content": "x\n"}], "cost_usd": 0.25,
                                      "usage": usage}}}
    with running_service(tmp_path, script) as svc:
        run = svc.run("PROJ-90", summary="secret-ish summary text")
        assert svc.client.post("/webhook/jira", content=b"{oops", headers={"content-type": "application/json"}
                               ).status_code == 400
        ignored = svc.client.post("/webhook/jira", json={"webhookEvent": "comment_created",
                                                          "issue": {"key": "PROJ-91"}})
        assert ignored.json()["status"] == "ignored"
        # A run another host accepted: its record is in the shared database only.
        svc.services.store.sync.create_run("PROJ-92:elsewhere", "PROJ-92", '{"key": "PROJ-92"}')
        resp = svc.client.get("/metrics")
    assert run["status"] == "succeeded"
    assert resp.headers["content-type"].startswith("text/plain; version=")
    m = _samples(resp.text)
    assert m["auto_code_webhook_deliveries_total", (("code", ""), ("outcome", "queued"))] == 1
    assert m["auto_code_webhook_deliveries_total", (("code", "invalid_json"), ("outcome", "rejected"))] == 1
    assert m["auto_code_webhook_deliveries_total", (("code", ""), ("outcome", "ignored"))] == 1
    assert m["auto_code_runs_finished_total", (("status", "succeeded"),)] == 1
    assert m["auto_code_step_duration_seconds_count", (("status", "succeeded"), ("step", "implement"))] == 1
    assert m["auto_code_step_duration_seconds_count", (("status", "succeeded"), ("step", "push"))] == 1
    assert m["auto_code_queue_wait_seconds_count", ()] == 1
    assert m["auto_code_model_tokens_total", (("kind", "input"),)] == 1200
    assert m["auto_code_model_tokens_total", (("kind", "cache_read"),)] == 7000
    assert m["auto_code_model_tokens_total", (("kind", "cache_creation"),)] == 50
    assert m["auto_code_model_cost_usd_total", ()] == 0.25
    # Shared state, from the database: the other host's queued record shows.
    assert m["auto_code_runs", (("status", "succeeded"),)] == 1
    assert m["auto_code_queue_depth", ()] == 1
    assert m["auto_code_runs_in_flight", ()] == 0
    assert m["auto_code_queue_oldest_age_seconds", ()] >= 0
    labels = " ".join(v for (_, pairs) in m for _, v in pairs)
    assert not re.search(r"PROJ|secret-ish", labels)


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    settings = workspace_settings(tmp_path, make_remote(tmp_path / "target"))
    a, b = create_app(settings), create_app(settings)
    a.state.metrics.delivery("queued")
    a.state.metrics.run_finished("failed")
    from app.services.metrics import SharedState
    text_b = b.state.metrics.render(SharedState(counts={})).decode()
    assert 'auto_code_runs_finished_total{status="failed"}' not in text_b
    assert 'auto_code_runs_finished_total{status="failed"} 1.0' in a.state.metrics.render(
        SharedState(counts={})).decode()
    assert not [n for n in prometheus_client.REGISTRY._names_to_collectors if n.startswith("auto_code")]


def test_shared_gauges_come_from_the_state_handed_to_render() -> None:
    """The oldest-queued age is `now` minus the oldest queued run's creation time, and the status
    gauges follow the counts."""
    from app.services.metrics import ServiceMetrics, SharedState
    text = ServiceMetrics().render(SharedState(counts={"queued": 2, "running": 3, "waiting": 1},
                                               oldest_queued_at=100.0, now=160.0)).decode()
    m = _samples(text)
    assert m["auto_code_queue_oldest_age_seconds", ()] == 60.0
    assert m["auto_code_queue_depth", ()] == 2
    assert m["auto_code_runs_in_flight", ()] == 3
    assert m["auto_code_runs_waiting", ()] == 1
    assert m["auto_code_runs", (("status", "failed"),)] == 0


# Known records: (run id, status, created_at). The oldest queued one was created at 150.0; older
# records in other statuses must not count.
KNOWN = [("PROJ-1:a", "queued", 200.0), ("PROJ-2:b", "queued", 150.0), ("PROJ-3:c", "running", 50.0),
         ("PROJ-4:d", "waiting", 20.0), ("PROJ-5:e", "failed", 10.0)]


def _place(store: Any, rows: list[tuple[str, str, float]], *, enqueued_at: float | None = None) -> None:
    """Records as another host wrote them (times set directly: `create_run` stamps the clock)."""
    from app.services.runner.tables import runs

    for run_id, status, created in rows:
        store.create_run(run_id, run_id.split(":")[0], '{"key": "x"}', status)
        with store.engine.begin() as conn:
            conn.execute(sa.update(runs).where(runs.c.run_id == run_id)
                         .values(created_at=created, enqueued_at=enqueued_at))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    from app.services.runner.store import SqlRunStore, make_engine

    url = request.getfixturevalue("pg_database") if request.param == "postgres" else (
        f"sqlite:///{tmp_path / 'runs.sqlite'}")
    sql = SqlRunStore(make_engine(url))
    sql.create_schema()
    try:
        yield sql
    finally:
        sql.dispose()


def test_the_oldest_queued_time_is_one_aggregate_over_queued_records_only(store: Any) -> None:
    assert store.oldest_queued_at() is None  # no run at all
    _place(store, KNOWN[2:])
    assert store.oldest_queued_at() is None  # runs, none queued
    _place(store, KNOWN[:2])
    assert store.oldest_queued_at() == 150.0


def test_the_oldest_queued_age_on_metrics_is_that_of_the_oldest_queued_record(tmp_path: Path) -> None:
    # Handed off just now by "another host" (so this host's dispatcher and reconciler leave them).
    with running_service(tmp_path, RECONCILE_INTERVAL_SEC=0) as svc:
        now = time.time()
        _place(svc.services.store.sync, [(r, s, now - 1000 + t) for r, s, t in KNOWN], enqueued_at=now)
        loaded: list[str] = []  # statements that read whole run records, the dispatcher's poll aside

        def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            if "ac_runs.ticket_json" in statement and "enqueued_at IS NULL" not in statement:
                loaded.append(statement)

        engine = svc.services.store.sync.engine
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            before = time.time()
            text = svc.client.get("/metrics").text
            after = time.time()
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
    age = _samples(text)["auto_code_queue_oldest_age_seconds", ()]
    oldest = now - 1000 + 150.0
    assert before - oldest <= age <= after - oldest  # 850 s, as of the scrape: not the running one's
    assert _samples(text)["auto_code_queue_depth", ()] == 2
    assert loaded == []  # aggregates only (a count by status, one MIN): no record was loaded
