"""Follow-ups (issue 11) with several repositories (issue 12), through the real service with the REAL
Claude Code CLI (sandboxed, against the scripted model server), real git on two bare remotes, DBOS on
SQLite and a fake GitHub per repository (each at its own API URL, answering only to its own token,
tests/repositories/kit.py): "web" (token GH_TOKEN_WEB, account web-bot) and "api" (GH_TOKEN, account
api-bot) each hold a PR #1. What happens on one repository's PR is read from, fixed in and answered
on that repository only; the other's GitHub hears nothing. A delivery for a repository the service
is not configured for is ignored with its reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.followups.deps import followup_deps
from app.followups.poller import GitHubPoller
from app.followups.wiring import followups_of
from tests.e2e.conftest import IMPLEMENT, REVIEW, E2EService, requests_with, session_of
from tests.e2e.followup_kit import FOLLOWUP_CI, FOLLOWUP_REVIEW, SECRET
from tests.e2e.repositories_kit import two_repository_service
from tests.fakes.anthropic_api import FakeAnthropicAPI, Rule, read, text, write
from tests.fakes.github_activity import Job
from tests.fakes.github_api import FakeGitHub
from tests.fakes.github_webhooks import check_suite_completed, deliver, pull_request_review_comment_created
from tests.gitrepos import git, remote_sha
from tests.repositories.kit import two_repositories

pytestmark = pytest.mark.real_cli

API_LOG = "FAILED tests/test_api.py::test_endpoint - KeyError: 'id'\n" + "".join(
    f"api noise {i}\n" for i in range(500))


@pytest.fixture
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with two_repositories(tmp_path, monkeypatch) as repos:
        for name in ("web", "api"):  # each fake's PR heads are its own remote's branches
            remote, gh = repos[name].remote, repos[f"gh_{name}"]
            gh.sha_of = lambda branch, remote=remote: remote_sha(remote, branch) or ""
            gh.activity.token_login = f"{name}-bot"  # each token acts as its own account
        yield repos


def _script(model: FakeAnthropicAPI) -> None:
    model.script(
        Rule(prompt_contains=IMPLEMENT,
             turns=[write("{cwd}/CHANGES.md", "changed\n"), text("Added CHANGES.md.")]),
        Rule(prompt_contains=REVIEW, turns=[text("Looks right.\nHAS_ISSUES: false\nFINDINGS:\nnone")]),
        Rule(prompt_contains=FOLLOWUP_CI, turns=[read("{cwd}/.auto-code-ci/1-test.log"),
                                                 write("{cwd}/endpoint.txt", "id\n"),
                                                 text("Added the id the api test wanted.")]),
    )


def _two_prs(svc: E2EService) -> dict[str, dict[str, Any]]:
    """WEB-1 → web's PR #1, API-1 → api's PR #1 (the same number in two repositories)."""
    web = svc.client.post("/webhook/jira", json={"key": "WEB-1", "summary": "Banner",
                                                 "components": [{"name": "Frontend"}]}).json()["run_id"]
    api = svc.client.post("/webhook/jira", json={"key": "API-1", "summary": "Endpoint"}).json()["run_id"]
    runs = {"web": svc.wait(web, 120), "api": svc.wait(api, 120)}
    assert all(r["status"] == "succeeded" for r in runs.values()), {k: r["error"] for k, r in runs.items()}
    return runs


def _hook(svc: E2EService, event: str, payload: dict[str, Any]) -> dict[str, Any]:
    resp = deliver(svc.client, event, payload, secret=SECRET)
    assert resp.status_code == 202, resp.text
    return dict(resp.json())


def _red_ci(gh: FakeGitHub, log: str) -> dict[str, Any]:
    pr = gh.pr(1)
    jobs = [Job("lint", "success", "ok"), Job("test", "failure", log)]
    return gh.activity.complete_ci(pr["head"]["sha"], jobs, branch=pr["head"]["ref"])


def _parents(remote: Path, sha: str | None) -> list[str]:
    return git(remote, "rev-list", "--parents", "-n", "1", str(sha)).split()[1:]


def test_red_ci_on_one_repositorys_pr_is_fixed_there_and_the_other_hears_nothing(
        tmp_path: Path, two: dict[str, Any], model: FakeAnthropicAPI) -> None:
    _script(model)
    gh_web, gh_api, web, api = two["gh_web"], two["gh_api"], two["web"], two["api"]
    with two_repository_service(tmp_path, two, model, GITHUB_WEBHOOK_SECRET=SECRET) as svc:
        openers = _two_prs(svc)
        web_head, api_head = remote_sha(web.remote, "ticket/web-1"), remote_sha(api.remote, "ticket/api-1")
        suite = _red_ci(gh_api, API_LOG)
        web_seen = len(gh_web.requests)
        answer = _hook(svc, "check_suite", check_suite_completed(gh_api, suite, pr_number=1))
        assert answer["status"] == "queued", answer
        run = svc.wait(answer["run_id"], 120)
        web_after = gh_web.requests[web_seen:]
        elsewhere = check_suite_completed(gh_api, suite, pr_number=1)
        elsewhere["repository"] = {**elsewhere["repository"], "full_name": "acme/elsewhere"}
        unconfigured = _hook(svc, "check_suite", elsewhere)
        workspace = svc.workspace
        fu = followup_deps(svc.app.state.services.deps)
        clients = [fu.activity("acme/web"), fu.activity("acme/api")]
    # Each repository had its own client, and the service closed each when it stopped.
    assert clients[0] is not clients[1]
    assert all(c is not None and c._rest.http.is_closed for c in clients)  # type: ignore[attr-defined]
    assert run["status"] == "succeeded", (run["error"], [s["name"] for s in run["steps"]])
    assert (run["kind"], run["repository"], run["pr_number"]) == ("ci_fix", "api", 1)
    assert run["parent_run_id"] == openers["api"]["run_id"]
    # The agent worked in api's clone, in API-1's own session, and read api's whole job log.
    (cwd,) = {r.cwd() for r in requests_with(model, FOLLOWUP_CI)}
    assert cwd == str(workspace / "repos" / "api" / "worktrees" / "ticket-api-1")
    fix = requests_with(model, FOLLOWUP_CI)
    api_implement = [r for r in requests_with(model, IMPLEMENT) if r.cwd().endswith("ticket-api-1")]
    assert session_of(fix[0]) == session_of(api_implement[0])
    results = "\n".join(r for req in fix for r in req.tool_results())
    assert "FAILED tests/test_api.py::test_endpoint" in results and "api noise 499" in results
    # A new commit on api's branch, on top of the pushed one; web's branch did not move.
    new_api = remote_sha(api.remote, "ticket/api-1")
    assert new_api != api_head and _parents(api.remote, new_api) == [api_head]
    assert "endpoint.txt" in git(api.remote, "ls-tree", "-r", "--name-only", str(new_api)).split()
    assert remote_sha(web.remote, "ticket/web-1") == web_head
    assert remote_sha(web.remote, "ticket/api-1") is None
    # api's GitHub: the failed job re-run once, its log downloaded, one comment by api's account.
    assert len(gh_api.activity.reruns) == 1 and any(r.path.startswith("/_logs/") for r in gh_api.requests)
    (note,) = gh_api.activity.issue_comments[1]
    assert "pushed a fix" in note["body"] and note["user"]["login"] == "api-bot"
    # web's GitHub heard nothing of it: not one request while the delivery was decided and fixed.
    assert web_after == [] and gh_web.activity.reruns == [] and gh_web.activity.issue_comments == {}
    assert unconfigured == {"status": "ignored", "reason": "repository acme/elsewhere is not one auto-code "
                            "is configured for (REPOSITORIES_FILE, or GITHUB_REPOSITORY): no follow-ups"}


def test_a_review_on_one_repository_goes_to_it_and_the_poller_reads_each_pr_from_its_own(
        tmp_path: Path, two: dict[str, Any], model: FakeAnthropicAPI) -> None:
    _script(model)
    gh_web, gh_api, web, api = two["gh_web"], two["gh_api"], two["web"], two["api"]
    with two_repository_service(tmp_path, two, model, GITHUB_WEBHOOK_SECRET=SECRET) as svc:
        _two_prs(svc)
        services = svc.app.state.services
        fu = followup_deps(services.deps)
        poller = GitHubPoller(fu, followups_of(svc.app).intake, interval_sec=0)
        logins = [svc.client.portal.call(fu.service_login, k) for k in ("acme/web", "acme/api")]
        quiet = svc.client.portal.call(poller.poll_once)  # nothing yet; ETags kept
        # Red CI on api's PR #1, found by polling (no webhook): a ci_fix of api's PR.
        api_head = remote_sha(api.remote, "ticket/api-1")
        _red_ci(gh_api, API_LOG)
        found = svc.client.portal.call(poller.poll_once)
        ci_run = svc.wait(found[0]["run_id"], 120) if found else {}
        # A review comment on web's PR #1 (the same number), by a collaborator of web.
        gh_web.activity.collaborators["carol"] = "write"
        comment = gh_web.activity.add_review_comment(
            1, "carol", "Say what the banner is for.", path="CHANGES.md", line=1,
            diff_hunk="@@ -0,0 +1 @@\n+changed")
        model.script(Rule(prompt_contains=FOLLOWUP_REVIEW, turns=[
            write("{cwd}/CHANGES.md", "changed: a banner for the sale\n"),
            text(f"Said what the banner is for.\nREPLY {comment['id']}: It announces the sale now.")]))
        web_head = remote_sha(web.remote, "ticket/web-1")
        api_seen = len(gh_api.requests)
        payload = pull_request_review_comment_created(gh_web, 1, comment)
        answer = _hook(svc, "pull_request_review_comment", payload)
        review_run = svc.wait(answer["run_id"], 120) if answer["status"] == "queued" else {}
        api_after = gh_api.requests[api_seen:]
        workspace = svc.workspace
    assert logins == ["web-bot", "api-bot"]  # GET /user on each repository's own token
    assert quiet == []
    assert [a["status"] for a in found] == ["queued"], found
    assert ci_run["status"] == "succeeded", ci_run["error"]
    assert (ci_run["kind"], ci_run["repository"], ci_run["pr_number"]) == ("ci_fix", "api", 1)
    assert remote_sha(api.remote, "ticket/api-1") != api_head
    assert any(r.path == "/repos/acme/api/commits/" + api_head + "/check-runs" for r in gh_api.requests)
    # The review went to web: its run, its clone, its branch, its thread, web's account.
    assert answer["status"] == "queued", answer
    assert (review_run["kind"], review_run["repository"], review_run["status"]) == (
        "review_fix", "web", "succeeded"), review_run["error"]
    (cwd,) = {r.cwd() for r in requests_with(model, FOLLOWUP_REVIEW)}
    assert cwd == str(workspace / "repos" / "web" / "worktrees" / "ticket-web-1")
    new_web = remote_sha(web.remote, "ticket/web-1")
    assert new_web != web_head and _parents(web.remote, new_web) == [web_head]
    replies = gh_web.activity.replies_to(1, comment["id"])
    assert [(r["body"], r["user"]["login"]) for r in replies] == [("It announces the sale now.", "web-bot")]
    # api's GitHub heard nothing of the review.
    assert api_after == [] and gh_api.activity.review_comments == {}
