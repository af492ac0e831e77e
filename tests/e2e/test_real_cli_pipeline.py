"""The pipeline with the REAL Claude Code CLI: files written through the CLI's own tools, gates whose
fix rounds resume the implement session (proved from what the model server was sent), a review that
cannot write, and the whole webhook → pull request path through the HTTP API."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    API_KEY,
    IMPLEMENT,
    REVIEW,
    claude_processes,
    fix_marker,
    no_claude_left,
    requests_with,
    session_of,
    step,
    tree_hashes,
)
from tests.fakes.anthropic_api import (
    FakeAnthropicAPI,
    RecordedRequest,
    Rule,
    bash,
    edit,
    message_text,
    read,
    text,
    write,
)
from tests.gitrepos import git

pytestmark = pytest.mark.real_cli


def conversation(req: RecordedRequest) -> list[tuple[str, str]]:
    """The user/assistant turns a request carries (text, tool inputs, tool results), without the
    CLI's own system notes, which it may recompute on a resume."""
    return [(m["role"], message_text(m, include_results=True)) for m in req.messages
            if m.get("role") in ("user", "assistant")]


def assert_resumed(model: FakeAnthropicAPI, gate: str) -> RecordedRequest:
    """The gate's first fix request belongs to the implement session and carries its whole
    conversation (prompt, tool calls, tool results, final answer) before the fix prompt."""
    impl = requests_with(model, IMPLEMENT)
    fix = requests_with(model, fix_marker(gate))
    assert impl and fix, f"implement={len(impl)} fix={len(fix)} requests"
    first_fix = fix[0]
    assert session_of(first_fix) == session_of(impl[0])
    earlier = conversation(impl[-1])
    carried = conversation(first_fix)
    assert carried[: len(earlier)] == earlier, "the fix request does not carry the implement conversation"
    assert IMPLEMENT in carried[0][1]  # the original ticket prompt is the conversation's start
    return first_fix


class TestImplement:
    def test_the_model_writes_a_file_and_the_run_records_the_session(
        self, e2e, model, tmp_path: Path
    ) -> None:
        model.script(Rule(prompt_contains=IMPLEMENT, turns=[
            write("{cwd}/docs/hello.md", "# Hello\n"), text("Added docs/hello.md.")]))
        with e2e(DRY_RUN=1) as svc:
            run = svc.run("PROJ-1")
            worktree = svc.worktree("PROJ-1")
        assert run["status"] == "succeeded", run["error"]
        assert (worktree / "docs" / "hello.md").read_text() == "# Hello\n"
        reqs = requests_with(model, IMPLEMENT)
        assert len(reqs) == 2 and reqs[0].headers["x-api-key"] == API_KEY
        assert reqs[0].cwd() == str(worktree)  # the worktree is the agent's cwd
        assert "File created successfully" in reqs[1].tool_results()[0]
        assert run["session_id"] == session_of(reqs[0]) and run["turns"] == 2 and run["cost_usd"] > 0
        detail = step(run, "implement")["detail"]
        assert detail["session_id"] == run["session_id"] and detail["turns"] == 2
        assert detail["cost_usd"] == run["cost_usd"] and detail["usage"]["input_tokens"] == 200
        assert detail["summary"] == "Added docs/hello.md." and detail["has_changes"] is True
        transcripts = list((svc.settings.claude_config_dir / "runs").rglob(f"{run['session_id']}.jsonl"))
        assert transcripts, "the CLI transcript is not under WORKSPACE_DIR"
        assert no_claude_left(tmp_path) == []


class TestGates:
    def test_lint_failure_is_fixed_in_the_resumed_session(self, e2e, model, tmp_path: Path) -> None:
        model.script(
            Rule(prompt_contains=IMPLEMENT, turns=[
                write("{cwd}/notes.md", "hello   \n"), text("Added notes.md.")]),
            Rule(prompt_contains=fix_marker("lint"), turns=[
                edit("{cwd}/notes.md", "hello   \n", "hello\n"), text("Removed the trailing spaces.")]),
        )
        with e2e(ENABLE_LINT=1) as svc:
            run = svc.run("PROJ-2")
        assert run["status"] == "succeeded", run["error"]
        lint = step(run, "lint")["detail"]
        assert [(r["kind"], r.get("passed")) for r in lint["rounds"]] == [
            ("check", False), ("fix", None), ("check", True)]
        first_fix = assert_resumed(model, "lint")
        assert "notes.md:1: trailing whitespace" in first_fix.prompt_text()  # the failure was fed back
        assert lint["rounds"][1]["session_id"] == run["session_id"] == session_of(first_fix)
        assert git(svc.demo.remote, "show", "ticket/proj-2:notes.md") == "hello\n"
        assert no_claude_left(tmp_path) == []

    def test_test_failure_is_fixed_in_the_resumed_session(self, e2e, model, tmp_path: Path) -> None:
        failing = ("import unittest\n\n\nclass Extra(unittest.TestCase):\n"
                   "    def test_sum(self) -> None:\n        self.assertEqual(1 + 1, 3)\n")
        model.script(
            Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/tests/test_extra.py", failing),
                                                   text("Added a test.")]),
            Rule(prompt_contains=fix_marker("test"), turns=[
                edit("{cwd}/tests/test_extra.py", "1 + 1, 3", "1 + 1, 2"), text("Fixed the expectation.")]),
        )
        with e2e(ENABLE_TESTS=1, DRY_RUN=1) as svc:
            run = svc.run("PROJ-3")
            worktree = svc.worktree("PROJ-3")
        assert run["status"] == "succeeded", run["error"]
        rounds = step(run, "test")["detail"]["rounds"]
        assert [(r["kind"], r.get("passed")) for r in rounds] == [
            ("check", False), ("fix", None), ("check", True)]
        first_fix = assert_resumed(model, "test")
        assert "AssertionError: 2 != 3" in first_fix.prompt_text()
        assert "1 + 1, 2" in (worktree / "tests" / "test_extra.py").read_text()
        assert no_claude_left(tmp_path) == []

    def test_review_with_issues_then_a_fix_round_then_clean(self, e2e, model, tmp_path: Path) -> None:
        def says_draft(req: RecordedRequest) -> bool:  # the reviewer judges what its Read returned
            return req.step() == 0 or any("draft" in r for r in req.tool_results())

        model.script(
            Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/a.md", "draft\n"), text("Wrote a.md.")]),
            Rule(prompt_contains=REVIEW, match=says_draft, turns=[
                read("{cwd}/a.md"),
                text("Looks unfinished.\nHAS_ISSUES: true\nFINDINGS:\n- a.md:1 still a draft")]),
            Rule(prompt_contains=REVIEW, turns=[
                read("{cwd}/a.md"), text("HAS_ISSUES: false\nFINDINGS:\nnone")]),
            Rule(prompt_contains=fix_marker("review"), turns=[
                write("{cwd}/a.md", "final\n"), text("Finished a.md.")]),
        )
        with e2e(ENABLE_REVIEW=1) as svc:
            run = svc.run("PROJ-4")
        assert run["status"] == "succeeded", run["error"]
        review = step(run, "review")["detail"]
        assert [(r["kind"], r.get("has_issues")) for r in review["rounds"]] == [
            ("check", True), ("fix", None), ("check", False)]
        assert review["outcome"] == "passed" and "a.md:1 still a draft" in review["rounds"][0]["findings"]
        first_fix = assert_resumed(model, "review")
        assert "a.md:1 still a draft" in first_fix.prompt_text()
        review_sessions = {session_of(r) for r in requests_with(model, REVIEW)}
        assert len(review_sessions) == 2 and run["session_id"] not in review_sessions  # separate sessions
        assert git(svc.demo.remote, "show", "ticket/proj-4:a.md") == "final\n"
        assert no_claude_left(tmp_path) == []


class TestReviewIsReadOnly:
    def test_scripted_writes_in_review_are_refused_and_the_worktree_is_unchanged(
        self, e2e, model, tmp_path: Path
    ) -> None:
        before: dict[str, Any] = {}
        snapped = threading.Event()

        def snapshot_first(req: RecordedRequest) -> bool:
            # The first review request: implement is over and the review has done nothing yet.
            if req.step() == 0 and not snapped.is_set():
                cwd = req.cwd()
                before.update(cwd=cwd, hashes=tree_hashes(Path(cwd or "/nonexistent")),
                              processes=claude_processes(tmp_path))
                snapped.set()
            return True

        model.script(
            Rule(prompt_contains=IMPLEMENT, turns=[
                write("{cwd}/hello.md", "hello\n"), text("Wrote hello.md.")]),
            Rule(prompt_contains=REVIEW, match=snapshot_first, turns=[
                write("{cwd}/greeter/greeting.py", "raise SystemExit('reviewer was here')\n"),
                edit("{cwd}/hello.md", "hello", "HACKED"),
                bash("touch {cwd}/made-by-review"),
                text("HAS_ISSUES: false\nFINDINGS:\nnone"),
            ]),
        )
        with e2e(ENABLE_REVIEW=1, DRY_RUN=1) as svc:
            run = svc.run("PROJ-5")
            worktree = svc.worktree("PROJ-5")
        assert run["status"] == "succeeded", run["error"]
        assert before.get("cwd") == str(worktree) and before["hashes"], "the review never started"
        assert tree_hashes(worktree) == before["hashes"]  # byte for byte, and no new file
        assert (worktree / "hello.md").read_text() == "hello\n"
        reviews = requests_with(model, REVIEW)
        assert len(reviews) == 4  # every scripted tool call was answered, none performed
        offered = {t.get("name") for t in reviews[0].body.get("tools", [])}
        assert offered and not offered & {"Write", "Edit", "MultiEdit", "NotebookEdit", "Bash"}, offered
        results = reviews[-1].tool_results()
        assert len(results) == 3 and all("File created" not in r and "updated" not in r for r in results)
        assert step(run, "review")["detail"]["outcome"] == "passed"
        assert no_claude_left(tmp_path) == []


class TestWebhookToPullRequest:
    def test_the_whole_path_through_the_http_api(self, e2e, model, github, tmp_path: Path) -> None:
        model.script(Rule(prompt_contains=IMPLEMENT, turns=[
            write("{cwd}/greeter/farewell.py", '"""Farewells."""\n\n\ndef bye(name: str) -> str:\n'
                                               '    return f"Bye, {name}!"\n'),
            text("Added greeter.farewell.bye().")]))
        secret = "e2e-webhook-token-7f3a9c2d1b"
        with e2e(WEBHOOK_SECRET=secret, ENABLE_LINT=1, ENABLE_TESTS=1, START_ON_ISSUE_CREATED=1) as svc:
            refused = svc.client.post("/webhook/jira", json={"key": "PROJ-6", "summary": "x"})
            resp = svc.client.post("/webhook/jira", headers={"X-Webhook-Token": secret}, json={
                "webhookEvent": "jira:issue_created",
                "issue": {"key": "PROJ-6",
                          "fields": {"summary": "Say goodbye", "description": "Add bye()."}}})
            assert resp.status_code == 202 and resp.json()["status"] == "queued", resp.text
            run = svc.wait(resp.json()["run_id"])
        assert refused.status_code == 401
        assert run["status"] == "succeeded", run["error"]
        assert [s["name"] for s in run["steps"]] == [
            "prepare", "implement", "lint", "test", "commit", "push", "pull_request", "report", "cleanup"]
        assert len(github.prs) == 1
        pr = github.prs[0]
        assert (pr["head"], pr["base"], pr["state"]) == ("ticket/proj-6", "main", "open")
        assert run["pr_url"] == pr["html_url"] and "PROJ-6" in pr["title"]
        assert "Added greeter.farewell.bye()." in pr["body"]
        assert all(r.headers["authorization"].endswith(github.token) for r in github.requests)
        files = git(svc.demo.remote, "ls-tree", "-r", "--name-only", "ticket/proj-6").split()
        assert "greeter/farewell.py" in files
        subject = git(svc.demo.remote, "log", "-1", "--format=%s", "ticket/proj-6").strip()
        assert subject == "PROJ-6: Say goodbye"
        assert not svc.worktree("PROJ-6").exists()  # cleaned up after the PR
        assert no_claude_left(tmp_path) == []
