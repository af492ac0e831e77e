"""A repository's own model budget (`budget_usd` in REPOSITORIES_FILE) with the REAL Claude Code
CLI (sandboxed, through the model proxy, against the scripted model server): the run is cut off at
that budget, not at CLAUDE_MAX_BUDGET_USD, and its failure quotes the budget it had."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.e2e.conftest import API_KEY, IMPLEMENT, E2EService
from tests.fakes.anthropic_api import FakeAnthropicAPI, Rule, text, write
from tests.gitrepos import make_remote, workspace_settings
from tests.repositories.kit import API_TOKEN, repositories_file, two_repositories

pytestmark = pytest.mark.real_cli

# 100k cache reads: metered by the proxy at $0.0525, over web's $0.05; the CLI's own estimate stays
# under it (it prices cache reads lower), so the CLI asks again and only the proxy stops it.
COSTLY = {"input_tokens": 0, "output_tokens": 100, "cache_read_input_tokens": 100_000}


@pytest.fixture
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with two_repositories(tmp_path, monkeypatch) as repos:
        yield repos


def test_a_run_is_held_to_its_repositorys_budget_and_says_so(tmp_path: Path, two: dict[str, Any],
                                                             model: FakeAnthropicAPI) -> None:
    model.script(Rule(prompt_contains=IMPLEMENT, turns=[
        write("{cwd}/a.md", "a\n", usage=COSTLY), write("{cwd}/b.md", "b\n", usage=COSTLY), text("done")]))
    path = repositories_file(tmp_path, two["web"], two["api"], two["gh_web"], two["gh_api"],
                             web_extra="budget_usd = 0.05")
    settings = workspace_settings(
        tmp_path, make_remote(tmp_path / "unused"), CLAUDE_CLIENT="sdk", ANTHROPIC_API_KEY=API_KEY,
        CLAUDE_TIMEOUT_SEC="30", CLAUDE_MAX_TURNS="10", CLAUDE_MAX_BUDGET_USD="7", GITHUB_CLIENT="api",
        GH_TOKEN=API_TOKEN, REPOSITORIES_FILE=str(path), DRY_RUN="1")
    app = create_app(settings)
    with TestClient(app) as client:
        svc = E2EService(client=client, app=app, settings=settings, demo=two["web"], model=model,
                         github=two["gh_web"], headers={})
        web = {"key": "WEB-5", "summary": "Banner", "components": [{"name": "Frontend"}]}
        run = svc.wait(client.post("/webhook/jira", json=web).json()["run_id"], 120)
    assert run["status"] == "failed" and run["repository"] == "web", run
    error = run["error"] or ""
    assert "the run's model budget of $0.05 is spent (cut off at the model proxy)" in error, error
    assert "$7" not in error
    assert len(model.message_requests()) == 1, "a request reached the model after the cutoff"
    assert run["cost_usd"] > 0.05

