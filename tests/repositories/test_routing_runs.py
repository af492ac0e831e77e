"""Routing through the real service, with the fake Jira REST v3: a ticket no repository takes (or
two take) ends `needs_routing` with a Jira comment saying how to route it, and the update that
sets its component starts work in the right repository; a key-only Automation delivery works from
the ticket as Jira has it (its component routes it); without Jira credentials it is refused (422)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.repositories.fairness import RepositorySlots
from tests.fakes.jira_api import FakeJira
from tests.repositories.kit import serve
from tests.services.runner.harness import step

ADF = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
    {"type": "text", "text": "Say "}, {"type": "text", "text": "hello", "marks": [{"type": "code"}]},
    {"type": "text", "text": " on the front page."}]}]}


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(issues={}).start() as fake:
        yield fake


def jira_env(jira: FakeJira) -> dict[str, str]:
    return {"JIRA_BASE_URL": jira.base_url, "JIRA_EMAIL": jira.email, "JIRA_API_TOKEN": jira.token,
            "JIRA_ACCOUNT_ID": jira.account_id, "JIRA_PROGRESS_COMMENTS": "0"}


def component_set(key: str, component: str) -> dict[str, Any]:
    """A system webhook `jira:issue_updated` whose changelog sets a component (no trigger)."""
    return {"webhookEvent": "jira:issue_updated", "issue_event_type_name": "issue_updated",
            "user": {"accountId": "acc-pm"},
            "issue": {"key": key, "fields": {"summary": "Fix the banner",
                                             "components": [{"name": component}]}},
            "changelog": {"items": [{"field": "Component", "fieldId": "components", "fromString": None,
                                     "toString": component}]}}


def test_no_match_ends_needs_routing_then_the_update_that_routes_it_starts_work(
        tmp_path: Path, two: dict[str, Any], jira: FakeJira) -> None:
    jira.set_issue("OPS-1", summary="Fix the banner", description="The banner is wrong")
    with serve(tmp_path, two, **jira_env(jira)) as svc:
        first = svc.wait(svc.deliver("OPS-1", "Fix the banner")["run_id"])
        early = svc.client.post("/webhook/jira", json={**component_set("OPS-2", "Frontend")})
        jira.set_issue("OPS-1", summary="Fix the banner", components=[{"name": "Frontend"}])
        routed = svc.client.post("/webhook/jira", json=component_set("OPS-1", "Frontend"))
        second = svc.wait(routed.json()["run_id"])
        again = svc.client.post("/webhook/jira", json=component_set("OPS-1", "Frontend"))
        metrics = svc.client.get("/metrics").text
    assert first["status"] == "needs_routing" and first["repository"] is None
    assert first["error"] == "no repository matches this ticket"
    assert [s["name"] for s in first["steps"]] == ["report"]  # nothing was cloned, nothing run
    comment = jira.comment_texts("OPS-1")[0]
    assert "cannot tell which repository this ticket is for" in comment
    assert "Set a component or a label" in comment
    assert "- web: component=Frontend" in comment and "- api: project=API" in comment
    # The update that set the component: queued, routed to web, a PR there.
    assert routed.status_code == 202 and routed.json()["status"] == "queued", routed.text
    assert second["status"] == "succeeded", second["error"]
    assert second["repository"] == "web"
    assert step(second, "prepare")["detail"]["configure"]["routed_by"] == "component=Frontend"
    assert [p["head"] for p in two["gh_web"].prs] == ["ticket/ops-1"] and two["gh_api"].prs == []
    # The same kind of update for a ticket that is not waiting to be routed stays ignored.
    assert early.json()["status"] == "ignored" and again.json()["status"] == "ignored"
    assert 'auto_code_repository_runs_finished_total{repository="-",status="needs_routing"} 1.0' in metrics
    assert 'auto_code_repository_runs_finished_total{repository="web",status="succeeded"} 1.0' in metrics


def test_two_matches_are_ambiguous(tmp_path: Path, two: dict[str, Any], jira: FakeJira) -> None:
    jira.set_issue("API-2", summary="Banner API", components=[{"name": "Frontend"}])
    with serve(tmp_path, two, **jira_env(jira)) as svc:
        run = svc.wait(svc.deliver("API-2", "Banner API")["run_id"])
    assert run["status"] == "needs_routing"
    assert run["error"] == "2 repositories match this ticket: web (component=Frontend), api (project=API)"
    comment = jira.comment_texts("API-2")[0]
    assert "exactly one repository's routing rule" in comment
    assert two["gh_web"].prs == [] and two["gh_api"].prs == []


def test_key_only_automation_delivery_works_from_the_ticket_as_jira_has_it(
        tmp_path: Path, two: dict[str, Any], jira: FakeJira) -> None:
    jira.set_issue("OPS-7", summary="Greet the user", description=ADF, components=[{"name": "Frontend"}],
                   labels=["ux"])
    jira.add_comment_by("OPS-7", "Please use a friendly tone.", "acc-ann", "Ann")
    body = {"issue": {"key": "OPS-7"}, "timestamp": 1700000000000}  # what `{{issue.key}}` rules send
    with serve(tmp_path, two, **jira_env(jira)) as svc:
        resp = svc.client.post("/webhook/jira", json=body)
        run = svc.wait(resp.json()["run_id"])
        prompts = [c.prompt for c in svc.claude.calls if c.phase == "implement"]
    assert resp.status_code == 202 and run["status"] == "succeeded", (resp.text, run["error"])
    assert run["repository"] == "web"  # its component, as Jira has it, routed it
    prompt = prompts[0]
    assert "<summary>Greet the user</summary>" in prompt
    assert "Say `hello` on the front page." in prompt  # ADF as text through the one ADF rule
    assert "Ann: Please use a friendly tone." in prompt and "Components: Frontend" in prompt
    assert two["gh_web"].prs[0]["title"] == "OPS-7: Greet the user"
    assert any(r.path == "/rest/api/3/issue/OPS-7" for r in jira.requests)


def test_key_only_delivery_without_jira_credentials_is_refused(tmp_path: Path, two: dict[str, Any]) -> None:
    with serve(tmp_path, two) as svc:
        refused = svc.client.post("/webhook/jira", json={"issue": {"key": "OPS-8"}, "timestamp": 1})
        flat = svc.client.post("/webhook/jira", json={"key": "OPS-9"})
        described = svc.client.post("/webhook/jira", json={"key": "OPS-10", "description": "Only this"})
        listed = svc.client.get("/runs").json()
    assert refused.status_code == 422 and flat.status_code == 422
    assert refused.json()["error"] == "empty_ticket"
    assert "no summary and no description" in refused.json()["detail"]
    assert "JIRA_BASE_URL" in refused.json()["detail"]
    assert described.status_code == 202
    assert [r["ticket"] for r in listed] == ["OPS-10"]  # the refused ones left no run behind


async def test_a_burst_for_one_repository_leaves_slots_for_the_others() -> None:
    slots = RepositorySlots(total=3, shares={"web": 1})
    first_web = await slots.acquire("web")
    waiting_web = asyncio.ensure_future(slots.acquire("web"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting_web.done()  # web is at its share ...
    api_1 = await asyncio.wait_for(slots.acquire("api"), 5)  # ... api still gets a slot: no starvation
    api_2 = await asyncio.wait_for(slots.acquire("api"), 5)
    assert slots.would_wait("api")  # the total (3) is reached now
    first_web()
    second_web = await asyncio.wait_for(waiting_web, 5)
    for release in (second_web, api_1, api_2):
        release()
    assert not slots.would_wait("web") and not slots.would_wait("api")
