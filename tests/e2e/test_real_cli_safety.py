"""The real Claude Code CLI under the service's safety rules: the agent's environment holds none of the
service's secrets; max turns, budget, a failing API and a hung model each end the run `failed` with a
clear reason in time and leave no CLI process behind; and a fix round started after a service restart
still resumes the earlier conversation from the transcripts under WORKSPACE_DIR."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from app.main import services_of
from tests.e2e.conftest import (
    GH_TOKEN,
    IMPLEMENT,
    claude_processes,
    fix_marker,
    no_claude_left,
    requests_with,
    session_of,
    step,
)
from tests.fakes.anthropic_api import (
    RecordedRequest,
    Rule,
    Turn,
    bash,
    edit,
    error,
    hang,
    text,
    wait_for,
    write,
)
from tests.gitrepos import git

pytestmark = pytest.mark.real_cli

SECRETS = {
    "GH_TOKEN": GH_TOKEN,
    "WEBHOOK_SECRET": "E2E_SECRET_webhook_value_8d2e7a6b",
    "JIRA_API_TOKEN": "E2E_SECRET_jira_api_token_3c9f",
}


class TestScrubbedEnvironment:
    def test_bash_env_shows_none_of_the_service_secrets(
        self, e2e, model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # In the process environment too: only the client's own scrub stands between them and the
        # agent (SCRUB_ENV=0, so the lifespan leaves os.environ alone).
        for name, value in SECRETS.items():
            monkeypatch.setenv(name, value)
        model.script(Rule(prompt_contains=IMPLEMENT, turns=[
            bash("env"), write("{cwd}/checked.md", "checked\n"), text("Checked the environment.")]))
        # `env` is allowed the way every enabled check command is: as the configured TEST_COMMAND.
        with e2e(SCRUB_ENV=0, TEST_COMMAND='["env"]', ENABLE_TESTS=1, DRY_RUN=1, **SECRETS) as svc:
            run = svc.run("PROJ-20")
        assert run["status"] == "succeeded", run["error"]
        assert step(run, "implement")["detail"]["permission_denials"] == []
        reqs = requests_with(model, IMPLEMENT)
        output = reqs[1].tool_results()[0]
        assert "PATH=" in output and "CLAUDE_CONFIG_DIR=" in output, output[:500]  # `env` really ran
        everything = json.dumps([r.body for r in model.requests])
        for name, value in SECRETS.items():
            assert f"{name}=" not in output, name
            assert value not in everything, f"{name}'s value reached the model"
        assert no_claude_left(tmp_path) == []


def _keeps_calling_tools() -> list[Turn]:
    return [bash("ls")]


def _costly() -> list[Turn]:
    return [Turn(blocks=[{"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}],
                 usage={"input_tokens": 2_000_000, "output_tokens": 10}), text("done")]


FAILURES = {
    # name: (turns the model answers with, settings, reason in the run's error, CLAUDE_TIMEOUT_SEC)
    "max_turns": (_keeps_calling_tools, {"CLAUDE_MAX_TURNS": "2"}, "agent max_turns", 15),
    "budget": (_costly, {"CLAUDE_MAX_BUDGET_USD": "0.01"}, "agent budget_exhausted", 15),
    "api_500": (lambda: [error(500)], {}, "agent api_error", 15),
    "hung_model": (lambda: [hang()], {}, "agent timeout: Claude Code did not finish within 3s", 3),
}


class TestFailures:
    @pytest.mark.parametrize("case", list(FAILURES))
    def test_the_run_fails_with_a_clear_reason_and_no_cli_is_left(
        self, e2e, model, tmp_path: Path, case: str
    ) -> None:
        turns, env, reason, timeout = FAILURES[case]
        alive_during: list[list[Any]] = []

        def note_processes(req: RecordedRequest) -> bool:  # runs while the CLI waits for the answer
            alive_during.append(claude_processes(tmp_path))
            return True

        model.script(Rule(prompt_contains=IMPLEMENT, match=note_processes, turns=turns()))
        with e2e(CLAUDE_TIMEOUT_SEC=timeout, **env) as svc:
            started = time.monotonic()
            run = svc.run("PROJ-21", timeout=timeout + 30)
            elapsed = time.monotonic() - started
            worktree = svc.worktree("PROJ-21")
            left = no_claude_left(tmp_path)  # while the service still runs: the run cleaned up itself
        assert run["status"] == "failed"
        assert run["error"].startswith(f"implement: {reason}"), run["error"]
        assert step(run, "implement")["status"] == "failed"
        assert elapsed < timeout + 5, f"took {elapsed:.1f}s with CLAUDE_TIMEOUT_SEC={timeout}"
        assert alive_during and alive_during[0], "the CLI was never seen running"
        assert left == [], left
        assert worktree.is_dir()  # kept for a post-mortem
        if case == "api_500":
            assert "HTTP 500" in run["error"]
            assert len(model.message_requests()) == 2  # CLAUDE_CODE_MAX_RETRIES=1: one try, one retry
        if case == "max_turns":
            assert run["session_id"] and run["turns"] == 3
        if case == "hung_model":
            assert elapsed >= timeout


class TestResumeAfterRestart:
    def test_a_fix_round_in_a_new_service_resumes_the_conversation(
        self, e2e, model, tmp_path: Path
    ) -> None:
        model.script(
            Rule(prompt_contains=IMPLEMENT, turns=[
                write("{cwd}/notes.md", "hello   \n"), text("Added notes.md.")]),
            Rule(prompt_contains=fix_marker("lint"), turns=[hang()]),  # the first service dies here
        )
        with e2e(ENABLE_LINT=1) as first:
            run_id = first.deliver("PROJ-22")
            assert wait_for(lambda: requests_with(model, fix_marker("lint")), 30), "no fix round started"
            session = session_of(requests_with(model, IMPLEMENT)[0])
        assert no_claude_left(tmp_path) == [], "the stopped service left its CLI running"
        transcripts = list((first.settings.claude_config_dir / "runs").rglob(f"{session}.jsonl"))
        assert transcripts, "no transcript under WORKSPACE_DIR"

        model.reset()  # the model server forgets everything; the transcripts must carry the session
        model.script(Rule(prompt_contains=fix_marker("lint"), turns=[
            edit("{cwd}/notes.md", "hello   \n", "hello\n"), text("Removed the trailing spaces.")]))
        with e2e(ENABLE_LINT=1) as second:  # same WORKSPACE_DIR, SQLite and EXECUTOR_ID: DBOS recovers
            assert services_of(second.app).deps.claude is not services_of(first.app).deps.claude
            run = second.wait(run_id)
        assert run["status"] == "succeeded", run["error"]
        fix = requests_with(model, fix_marker("lint"))
        assert fix and session_of(fix[0]) == session
        said = [(m["role"], json.dumps(m["content"])) for m in fix[0].messages]
        assert IMPLEMENT in said[0][1]  # the ticket prompt sent by the first service
        assert any(role == "assistant" and "notes.md" in c and "hello   " in c for role, c in said)
        assert any(role == "assistant" and "Added notes.md." in c for role, c in said)
        assert [r["kind"] for r in step(run, "lint")["detail"]["rounds"]] == ["check", "fix", "check"]
        assert git(second.demo.remote, "show", "ticket/proj-22:notes.md") == "hello\n"
        assert no_claude_left(tmp_path) == []
