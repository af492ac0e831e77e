"""The runs API contract: operator auth, listing and filters, one run's view, cancel, retry, SSE."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.services.runner.harness import running_service

OP = "operator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {OP}"}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def test_operator_token_guards_the_runs_api(tmp_path: Path) -> None:
    with running_service(tmp_path, OPERATOR_TOKEN=OP) as svc:
        c = svc.client
        answers = {
            "none": c.get("/runs"),
            "wrong": c.get("/runs", headers={"Authorization": "Bearer nope"}),
            "empty": c.get("/runs", headers={"Authorization": "Bearer "}),
            "prefix": c.get("/runs", headers={"Authorization": f"Bearer {OP[:-1]}"}),
            "longer": c.get("/runs", headers={"Authorization": f"Bearer {OP}x"}),
            "post": c.post("/runs/PROJ-1:x/cancel"),
            "basic": c.get("/runs", headers={"Authorization": f"Basic {OP}"}),
            "query": c.get(f"/runs?token={OP}"),
            "right": c.get("/runs", headers=AUTH),
            "metrics": c.get("/metrics"),
            "health": c.get("/health"),
        }
    for name in ("none", "wrong", "empty", "prefix", "longer", "post", "basic", "query", "metrics"):
        assert answers[name].status_code == 401, name
        assert answers[name].json()["error"] == "unauthorized"
    assert answers["right"].status_code == 200 and answers["right"].json() == []
    assert answers["health"].status_code == 200 and answers["health"].json()["status"] == "ok"


def test_list_filters_and_run_view(tmp_path: Path) -> None:
    with running_service(tmp_path) as svc:
        a = svc.run("PROJ-30")
        b = svc.run("PROJ-31")
        c = svc.client
        newest_first = [r["run_id"] for r in c.get("/runs").json()]
        by_ticket = c.get("/runs", params={"ticket": "PROJ-30"}).json()
        by_status = c.get("/runs", params={"status": "failed"}).json()
        limited = c.get("/runs", params={"limit": 1}).json()
        bad_status = c.get("/runs", params={"status": "exploded"})
        missing = c.get("/runs/PROJ-404:nope")
        metrics = c.get("/metrics").text
    assert newest_first == [b["run_id"], a["run_id"]]
    assert [r["run_id"] for r in by_ticket] == [a["run_id"]]
    assert by_status == [] and len(limited) == 1
    assert bad_status.status_code == 422 and bad_status.json()["error"] == "validation_error"
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert set(a) >= {"run_id", "ticket", "status", "created_at", "updated_at", "branch", "pr_url",
                      "session_id", "turns", "cost_usd", "error", "steps"}
    assert a["run_id"].startswith("PROJ-30:") and a["ticket"] == "PROJ-30"
    assert ISO_MS.match(a["created_at"]) and ISO_MS.match(a["steps"][0]["started_at"])
    assert set(a["steps"][0]) == {"name", "status", "started_at", "finished_at", "detail"}
    assert 'auto_code_runs{status="succeeded"} 2' in metrics


def test_cancel_a_running_run_then_retry_it(tmp_path: Path) -> None:
    script = {"delay_s": 5, "tickets": {}}
    with running_service(tmp_path, script) as svc:
        run_id = svc.deliver("PROJ-32")["run_id"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until the agent is at work
            steps = {s["name"]: s["status"] for s in svc.client.get(f"/runs/{run_id}").json()["steps"]}
            if steps.get("implement") == "running":
                break
            time.sleep(0.05)
        cancelled = svc.client.post(f"/runs/{run_id}/cancel")
        again = svc.client.post(f"/runs/{run_id}/cancel")
        time.sleep(1.5)  # give a wrongly continuing workflow the time to move on
        after = svc.client.get(f"/runs/{run_id}").json()
        svc.claude.delay_s = 0
        retried = svc.client.post(f"/runs/{run_id}/retry")
        new_run = svc.wait(retried.json()["run_id"])
        prs = svc.prs()
    assert cancelled.status_code == 202
    assert again.status_code == 400 and again.json()["error"] == "run_finished"
    assert after["status"] == "cancelled"
    assert [(s["name"], s["status"]) for s in after["steps"]][-1] == ("implement", "cancelled")
    assert len(after["steps"]) == 2  # prepare, implement: nothing ran after the cancel
    assert retried.status_code == 202 and retried.json()["status"] == "queued"
    assert retried.json()["run_id"] != run_id and new_run["status"] == "succeeded"
    assert len(prs) == 1


def test_events_stream_steps_logs_and_final_status(tmp_path: Path) -> None:
    with running_service(tmp_path) as svc:
        run = svc.run("PROJ-33")
        with svc.client.stream("GET", f"/runs/{run['run_id']}/events") as resp:
            body = "".join(resp.iter_text())
            ctype = resp.headers["content-type"]
        missing = svc.client.get("/runs/NOPE-1:x/events")
    assert ctype.startswith("text/event-stream")
    events = re.findall(r"^event: (\w+)$", body, re.M)
    assert events.count("step") == len(run["steps"])
    assert "log" in events and events[-1] == "run"
    assert '"status": "succeeded"' in body.split("event: run")[-1]
    assert missing.status_code == 404


def test_events_stream_pings_during_a_quiet_step(tmp_path: Path) -> None:
    """A long step sends nothing for a while: the stream keeps the connection visibly alive with
    `: ping` comments (SSE_PING_SEC), between the events, with the same events around them."""
    with running_service(tmp_path, {"delay_s": 2, "tickets": {}}, SSE_PING_SEC="0.2") as svc:
        run_id = svc.deliver("PROJ-34")["run_id"]
        with svc.client.stream("GET", f"/runs/{run_id}/events") as resp:
            body = "".join(resp.iter_text())
    lines = body.splitlines()
    pings = [i for i, line in enumerate(lines) if line == ": ping"]
    assert pings, body
    # Pings come while the agent works: after `implement` started, before it finished.
    implement_events = [i for i, line in enumerate(lines)
                        if line.startswith("data: ") and '"name": "implement"' in line]
    assert len(implement_events) >= 2 and any(implement_events[0] < p < implement_events[-1] for p in pings)
    events = re.findall(r"^event: (\w+)$", body, re.M)
    assert events[-1] == "run" and '"status": "succeeded"' in body.split("event: run")[-1]
