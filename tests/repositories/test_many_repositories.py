"""Several repositories through the real service (app, DBOS on SQLite, real git with bare remotes,
real checks in the sandbox, the fake GitHub REST API per repository, a scripted Claude): each ticket
routed to its repository, with that repository's commands, gates, clone, branch and PR; the
repository's own file read from its base branch only; the single-repository settings unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.gitrepos import commit_to_remote, remote_sha
from tests.repositories.kit import API_TOKEN, WEB_TOKEN, outputs, serve
from tests.services.runner.harness import running_service, step


def test_two_repositories_at_once_each_with_its_commands_gates_and_pr(tmp_path: Path,
                                                                       two: dict[str, Any]) -> None:
    with serve(tmp_path, two) as svc:
        web_id = svc.deliver("WEB-1", "Add a banner", components=[{"name": "Frontend"}])["run_id"]
        api_id = svc.deliver("API-1", "Add an endpoint")["run_id"]
        web_run, api_run = svc.wait(web_id), svc.wait(api_id)
        only_web = svc.client.get("/runs", params={"repository": "web"}).json()
        metrics = svc.client.get("/metrics").text
        records = svc.client.get("/runs").text + json.dumps([web_run, api_run])
    assert web_run["status"] == api_run["status"] == "succeeded", (web_run["error"], api_run["error"])
    assert (web_run["repository"], api_run["repository"]) == ("web", "api")
    assert [r["run_id"] for r in only_web] == [web_id]
    for name in ("web", "api"):  # /metrics groups finished runs by repository
        sample = f'auto_code_repository_runs_finished_total{{repository="{name}",status="succeeded"}} 1.0'
        assert sample in metrics
    # Each with its own gates and commands.
    web_steps, api_steps = [s["name"] for s in web_run["steps"]], [s["name"] for s in api_run["steps"]]
    assert "lint" in web_steps and "test" not in web_steps and "review" not in web_steps
    assert "test" in api_steps and "review" in api_steps and "lint" not in api_steps
    assert "lint of web" in outputs(web_run, "lint") and "tests of api" in outputs(api_run, "test")
    assert step(web_run, "prepare")["detail"]["configure"]["routed_by"] == "component=Frontend"
    assert step(api_run, "prepare")["detail"]["configure"]["routed_by"] == "project=API"
    # Each PR in its own GitHub repository (each fake answers only to its repository's token).
    gh_web, gh_api = two["gh_web"], two["gh_api"]
    assert [(p["head"], p["base"]) for p in gh_web.prs] == [("ticket/web-1", "main")]
    assert [(p["head"], p["base"]) for p in gh_api.prs] == [("ticket/api-1", "main")]
    assert web_run["pr_url"] == gh_web.prs[0]["html_url"] and api_run["pr_url"] == gh_api.prs[0]["html_url"]
    assert "repository `web`" in gh_web.prs[0]["body"] and "repository `api`" in gh_api.prs[0]["body"]
    # Each branch pushed to its own remote, from its own shared clone.
    web, api = two["web"], two["api"]
    assert remote_sha(web.remote, "ticket/web-1") and remote_sha(api.remote, "ticket/api-1")
    assert remote_sha(api.remote, "ticket/web-1") is None and remote_sha(web.remote, "ticket/api-1") is None
    assert (svc.workspace / "repos" / "web" / "repo" / ".git").is_dir()
    assert (svc.workspace / "repos" / "api" / "repo" / ".git").is_dir()
    # The web repository's own token is a secret like GH_TOKEN: in no record.
    assert WEB_TOKEN not in records and API_TOKEN not in records


IN_REPO = '''lint_command = ["python3", "-c", "print('lint from the base branch')"]
test_command = ["python3", "-c", "print('tests from the base branch')"]
'''
AGENT_EDIT = '''lint_command = ["python3", "-c", "print('AGENT CHOSE THIS LINT')"]
'''


def test_in_repo_file_read_from_the_base_branch_not_the_agents_branch(tmp_path: Path,
                                                                      two: dict[str, Any]) -> None:
    commit_to_remote(two["web"].remote, {".auto-code.toml": IN_REPO}, "auto-code settings")
    script = {"tickets": {"WEB-2": {"implement": [{"write": ".auto-code.toml", "content": AGENT_EDIT},
                                                  {"write": "banner.txt", "content": "hi\n"}]}}}
    with serve(tmp_path, two, script=script, web_extra='in_repo_overrides = ["lint_command"]') as svc:
        run = svc.wait(svc.deliver("WEB-2", "Banner", components=[{"name": "Frontend"}])["run_id"])
        logs = svc.logs(run["run_id"])
    assert run["status"] == "succeeded", run["error"]
    lint = outputs(run, "lint")
    assert "lint from the base branch" in lint and "AGENT CHOSE THIS LINT" not in lint
    configure = step(run, "prepare")["detail"]["configure"]
    assert configure["in_repo_file"] == ".auto-code.toml" and configure["applied"] == ["lint_command"]
    assert configure["ignored"] == ["test_command"]  # the operator did not allow it
    assert any("sets test_command" in line and "ignored" in line for line in logs)
    # The agent's edit is an ordinary change of its branch (reviewed in the PR), nothing more.
    assert two["gh_web"].prs[0]["head"] == "ticket/web-2"


def test_in_repo_file_ignored_unless_the_operator_allows_it(tmp_path: Path, two: dict[str, Any]) -> None:
    commit_to_remote(two["web"].remote, {".auto-code.toml": IN_REPO}, "auto-code settings")
    with serve(tmp_path, two) as svc:
        run = svc.wait(svc.deliver("WEB-3", "Banner", components=[{"name": "Frontend"}])["run_id"])
    assert run["status"] == "succeeded", run["error"]
    assert "lint of web" in outputs(run, "lint") and "base branch" not in outputs(run, "lint")
    assert step(run, "prepare")["detail"]["configure"]["in_repo_file"] is None


def test_a_broken_in_repo_file_fails_the_run_visibly(tmp_path: Path, two: dict[str, Any]) -> None:
    commit_to_remote(two["web"].remote, {".auto-code.toml": "lint_command = 'a string'\n"}, "broken")
    with serve(tmp_path, two, web_extra='in_repo_overrides = ["lint_command"]') as svc:
        run = svc.wait(svc.deliver("WEB-4", "Banner", components=[{"name": "Frontend"}])["run_id"])
    assert run["status"] == "failed"
    assert run["error"].startswith("configure: .auto-code.toml on the base branch is invalid: lint_command")
    assert step(run, "prepare")["status"] == "failed" and two["gh_web"].prs == []


def test_single_repository_settings_unchanged(tmp_path: Path) -> None:
    with running_service(tmp_path, ENABLE_LINT=1) as svc:
        run: dict[str, Any] = svc.run("PROJ-5", "Add docs")
    assert run["status"] == "succeeded", run["error"]
    assert run["repository"] == "default"
    assert (svc.workspace / "repo" / ".git").is_dir() and not (svc.workspace / "repos").exists()
    assert remote_sha(svc.remote, "ticket/proj-5") is not None and len(svc.prs()) == 1
    assert step(run, "prepare")["detail"]["configure"]["lint_command"] == ["python3", "scripts/lint.py"]




def test_a_replay_keeps_the_repository_its_start_step_recorded(tmp_path: Path, two: dict[str, Any]) -> None:
    """DBOS replays by position: a run resumed after a restart under another repositories file (here
    web's route is gone and api is the default: routed now, the ticket would go to api) works on the
    repository its recorded start step chose, not on a new routing of the live configuration."""
    from dbos import DBOS

    from app.models import Ticket
    from app.repositories.registry import Repositories, Repository
    from app.repositories.routing import Routed

    with serve(tmp_path, two) as svc:
        run = svc.wait(svc.deliver("WEB-9", "Banner", components=[{"name": "Frontend"}])["run_id"])
        assert run["status"] == "succeeded" and run["repository"] == "web", run["error"]
        deps = svc.services.deps
        assert deps.repositories is not None
        changes = {"web": {"routes": ()}, "api": {"default": True}}
        moved = [Repository(r.config.model_copy(update=changes[r.name]), r.workspace, r.pull_requests)
                 for r in deps.repositories]
        deps.repositories = Repositories(moved)  # the "new deployment": WEB-9 would now go to api
        now = deps.repositories.route(Ticket(key="WEB-9", components=["Frontend"]))
        assert now == Routed("api", "default")

        async def replay_from_prepare() -> tuple[str, list[str]]:
            steps = await DBOS.list_workflow_steps_async(run["run_id"])
            names = [s["function_name"].rsplit(".", 1)[-1] for s in steps]
            handle = await DBOS.fork_workflow_async(run["run_id"], names.index("prepare") + 1)
            return await handle.get_result(), names

        status, names = svc.client.portal.call(replay_from_prepare)
    assert names[0] == "start" and status == "succeeded"
    assert len(two["gh_web"].prs) == 1 and two["gh_api"].prs == []  # the PR reused in web, none in api
    assert len(two["gh_web"].requests_for("PATCH")) == 1  # the replay updated web's PR
