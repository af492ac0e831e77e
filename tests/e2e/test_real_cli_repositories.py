"""Two repositories at once with the REAL Claude Code CLI (sandboxed, against the scripted model
server): each ticket routed to its repository, worked on in that repository's own clone with its
own commands and gates, its PR opened in its own GitHub repository (a fake per repository, each
answering only to its token), and neither repository's token ever in what the model was sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import IMPLEMENT, REVIEW, requests_with, step
from tests.e2e.repositories_kit import two_repository_service
from tests.fakes.anthropic_api import FakeAnthropicAPI, Rule, text, write
from tests.gitrepos import remote_sha
from tests.repositories.kit import API_TOKEN, WEB_TOKEN, outputs, two_repositories

pytestmark = pytest.mark.real_cli


@pytest.fixture
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with two_repositories(tmp_path, monkeypatch) as repos:
        yield repos


def test_two_repositories_at_once_with_the_real_cli(tmp_path: Path, two: dict[str, Any],
                                                    model: FakeAnthropicAPI) -> None:
    model.script(
        Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/CHANGES.md", "changed\n"),
                                               text("Added CHANGES.md.")]),
        Rule(prompt_contains=REVIEW, turns=[text("Looks right.\nHAS_ISSUES: false\nFINDINGS:\nnone")]),
    )
    with two_repository_service(tmp_path, two, model) as svc:
        web = {"key": "WEB-1", "summary": "Banner", "components": [{"name": "Frontend"}]}
        web_id = svc.client.post("/webhook/jira", json=web).json()["run_id"]
        api = {"key": "API-1", "summary": "Endpoint"}
        api_id = svc.client.post("/webhook/jira", json=api).json()["run_id"]
        web_run, api_run = svc.wait(web_id, 120), svc.wait(api_id, 120)
        workspace = svc.workspace
    assert web_run["status"] == api_run["status"] == "succeeded", (web_run["error"], api_run["error"])
    assert (web_run["repository"], api_run["repository"]) == ("web", "api")
    # Each agent session worked in its own repository's clone.
    cwds = {r.cwd() for r in requests_with(model, IMPLEMENT)}
    assert cwds == {str(workspace / "repos" / "web" / "worktrees" / "ticket-web-1"),
                    str(workspace / "repos" / "api" / "worktrees" / "ticket-api-1")}
    # Each with its own gates and commands: web lints, api reviews (a real read-only session) and tests.
    assert "lint of web" in outputs(web_run, "lint") and "test" not in [s["name"] for s in web_run["steps"]]
    assert "tests of api" in outputs(api_run, "test") and step(api_run, "review")["status"] == "succeeded"
    assert len(requests_with(model, REVIEW)) >= 1 and all(
        r.cwd().endswith("ticket-api-1") for r in requests_with(model, REVIEW))
    # Each PR in its own GitHub repository, each branch on its own remote.
    assert [p["head"] for p in two["gh_web"].prs] == ["ticket/web-1"]
    assert [p["head"] for p in two["gh_api"].prs] == ["ticket/api-1"]
    assert remote_sha(two["web"].remote, "ticket/web-1") and remote_sha(two["api"].remote, "ticket/api-1")
    assert remote_sha(two["web"].remote, "ticket/api-1") is None
    # Neither repository's token reached the model (the agent's only way out).
    sent = "\n".join(str(r.body) for r in model.message_requests())
    assert WEB_TOKEN not in sent and API_TOKEN not in sent
