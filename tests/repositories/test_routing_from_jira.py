"""Routing by label and by a custom field through the real service, from the ticket as the fake Jira
REST v3 has it (the deliveries carry only the key), and a ticket two repositories match ending
`needs_routing` until the update that leaves one match starts work there. test_routing.py has the
rules themselves; test_routing_runs.py the project, the component, no match and the key-only rule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.jira_api import FakeJira
from tests.repositories.kit import serve
from tests.repositories.test_routing_runs import jira_env
from tests.services.runner.harness import step

# web also takes label "ux"; api also takes the select field customfield_10042 = backend.
WEB_LABEL = '[[repositories.routes]]\nlabel = "ux"\n'
API_FIELD = '[[repositories.routes]]\nfield = "customfield_10042"\nvalue = "backend"\n'


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(issues={}).start() as fake:
        yield fake


def key_only(key: str) -> dict[str, Any]:
    return {"issue": {"key": key}, "timestamp": 1700000000000}  # what `{{issue.key}}` rules send


def test_label_and_custom_field_route_tickets_read_from_jira(tmp_path: Path, two: dict[str, Any],
                                                            jira: FakeJira) -> None:
    jira.set_issue("OPS-20", summary="Tidy the footer", labels=["ux"])
    jira.set_issue("OPS-21", summary="Cache the report", customfield_10042={"value": "backend", "id": "7"})
    with serve(tmp_path, two, web_extra=WEB_LABEL, api_extra=API_FIELD, **jira_env(jira)) as svc:
        by_label = svc.wait(svc.client.post("/webhook/jira", json=key_only("OPS-20")).json()["run_id"])
        by_field = svc.wait(svc.client.post("/webhook/jira", json=key_only("OPS-21")).json()["run_id"])
    assert by_label["status"] == by_field["status"] == "succeeded", (by_label["error"], by_field["error"])
    assert (by_label["repository"], by_field["repository"]) == ("web", "api")
    assert step(by_label, "prepare")["detail"]["configure"]["routed_by"] == "label=ux"
    assert step(by_field, "prepare")["detail"]["configure"]["routed_by"] == "customfield_10042=backend"
    assert [p["head"] for p in two["gh_web"].prs] == ["ticket/ops-20"]
    assert [p["head"] for p in two["gh_api"].prs] == ["ticket/ops-21"]
    # The run asked Jira for the routing field (the fake gives only the fields asked for).
    asked = [r.query["fields"].split(",") for r in jira.requests
             if r.path == "/rest/api/3/issue/OPS-21" and r.query]
    assert asked and all("customfield_10042" in fields for fields in asked)


def component_removed(key: str, component: str) -> dict[str, Any]:
    """A system webhook `jira:issue_updated` whose changelog removes a component."""
    return {"webhookEvent": "jira:issue_updated", "issue_event_type_name": "issue_updated",
            "user": {"accountId": "acc-pm"},
            "issue": {"key": key, "fields": {"summary": "Banner API", "components": []}},
            "changelog": {"items": [{"field": "Component", "fieldId": "components", "fromString": component,
                                     "toString": None}]}}


def test_two_matches_then_the_update_that_leaves_one_starts_work(tmp_path: Path, two: dict[str, Any],
                                                                 jira: FakeJira) -> None:
    jira.set_issue("API-3", summary="Banner API", components=[{"name": "Frontend"}])
    with serve(tmp_path, two, **jira_env(jira)) as svc:
        first = svc.wait(svc.deliver("API-3", "Banner API", components=[{"name": "Frontend"}])["run_id"])
        jira.set_issue("API-3", summary="Banner API", components=[])  # someone removes the component
        routed = svc.client.post("/webhook/jira", json=component_removed("API-3", "Frontend"))
        assert routed.status_code == 202 and routed.json()["status"] == "queued", routed.text
        second = svc.wait(routed.json()["run_id"])
    assert first["status"] == "needs_routing" and first["repository"] is None
    assert first["error"] == "2 repositories match this ticket: web (component=Frontend), api (project=API)"
    comment = jira.comment_texts("API-3")[0]
    assert "- web: component=Frontend" in comment and "- api: project=API" in comment
    assert second["status"] == "succeeded", second["error"]
    assert second["repository"] == "api"
    assert step(second, "prepare")["detail"]["configure"]["routed_by"] == "project=API"
    assert [p["head"] for p in two["gh_api"].prs] == ["ticket/api-3"] and two["gh_web"].prs == []
