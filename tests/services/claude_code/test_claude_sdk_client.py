"""SdkClaudeCode driving the REAL Claude Code CLI against the scripted Messages API on 127.0.0.1:
files really written through the Write tool, a fix that really resumes, a review that really cannot
write, a scrubbed environment, and every failure ending as AgentError with no CLI process left."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.errors import AgentError
from app.prompts.ticket_prompts import fix_prompt
from tests.fakes.anthropic_api import FakeAnthropicAPI, Rule, Turn, bash, edit, error, hang, text, write
from tests.services.claude_code.conftest import (
    API_KEY,
    PLANTED_SECRETS,
    cli_processes_under,
    request,
    wait_no_cli_under,
)

pytestmark = pytest.mark.real_cli


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class RecordingTracer:
    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def agent_span(self, *, ticket_key: str, run_id: str, phase: str) -> Iterator[dict[str, Any]]:
        info: dict[str, Any] = {"ticket_key": ticket_key, "run_id": run_id, "phase": phase}
        yield info
        self.spans.append(info)

    def flush(self) -> None:
        pass


async def test_implement_writes_through_the_write_tool(
    cli_env: FakeAnthropicAPI, make_sdk, worktree: Path
) -> None:
    cli_env.script(
        Rule(
            prompt_contains="IMPLEMENT",
            turns=[write("{cwd}/src/hello.py", "print('hello')\n"), text("Added src/hello.py.")],
        )
    )
    tracer = RecordingTracer()
    claude = make_sdk(tracer=tracer)
    lines: list[str] = []
    run = await claude.implement(request(worktree, "IMPLEMENT the greeting", lines))

    assert (worktree / "src/hello.py").read_text() == "print('hello')\n"
    assert run.result_text == "Added src/hello.py."
    assert run.session_id and run.turns == 2 and run.cost_usd > 0
    assert run.usage["input_tokens"] == 200
    reqs = cli_env.message_requests()
    assert len(reqs) == 2 and reqs[0].headers["x-api-key"] == API_KEY
    assert reqs[0].headers["x-claude-code-session-id"] == run.session_id
    assert any("tool Write" in line for line in lines)
    assert tracer.spans == [
        {
            "ticket_key": "PROJ-1",
            "run_id": "PROJ-1:test",
            "phase": "implement",
            "session_id": run.session_id,
            "turns": 2,
            "cost_usd": run.cost_usd,
            "usage": run.usage,
        }
    ]
    # Transcripts live under WORKSPACE_DIR, so a resume survives a restart.
    transcripts = list((claude._settings.claude_config_dir / "runs").rglob(f"{run.session_id}.jsonl"))
    assert transcripts


async def test_warm_connects_before_the_prompt_and_implement_uses_it(
    cli_env: FakeAnthropicAPI, make_sdk, worktree: Path
) -> None:
    cli_env.script(Rule(prompt_contains="IMPLEMENT", turns=[write("{cwd}/a.txt", "a\n"), text("done")]))
    claude = make_sdk()
    await claude.warm(worktree, "PROJ-1:warm")
    warmed = cli_processes_under(worktree)
    assert warmed and cli_env.message_requests() == []  # connected, nothing sent to the model yet
    started = time.monotonic()
    run = await claude.implement(request(worktree, "IMPLEMENT"))
    assert time.monotonic() - started < 10
    assert (worktree / "a.txt").exists() and run.turns == 2
    assert claude._warm == {}  # the warmed connection was used, not left open


async def test_fix_resumes_the_session_with_the_earlier_conversation(
    cli_env: FakeAnthropicAPI, make_sdk, worktree: Path
) -> None:
    cli_env.script(
        Rule(prompt_contains="IMPLEMENT", turns=[write("{cwd}/calc.py", "x = 1 +\n"), text("wrote calc")]),
        Rule(
            prompt_contains="auto-code fix: gate=lint",
            turns=[
                Turn(
                    blocks=[
                        {
                            "type": "tool_use",
                            "name": "Write",
                            "input": {"file_path": "{cwd}/calc.py", "content": "x = 1 + 1\n"},
                        }
                    ]
                ),
                text("fixed the syntax error"),
            ],
        ),
    )
    tracer = RecordingTracer()
    claude = make_sdk(tracer=tracer)
    first = await claude.implement(request(worktree, "IMPLEMENT calc"))
    n_first = len(cli_env.message_requests())

    # A new client instance = a restarted service: the resume must come from disk, not memory.
    restarted = make_sdk(tracer=tracer)
    fixed = await restarted.fix(
        request(worktree, fix_prompt("lint", "calc.py:1 SyntaxError", 1), gate="lint", round=1),
        first.session_id,
    )

    assert (worktree / "calc.py").read_text() == "x = 1 + 1\n"
    assert fixed.session_id == first.session_id
    fix_req = cli_env.message_requests()[n_first]
    roles = [m["role"] for m in fix_req.messages if m["role"] in ("user", "assistant")]
    assert roles[:4] == ["user", "assistant", "user", "assistant"]  # the implement leg, replayed
    history = fix_req.all_text()
    assert "IMPLEMENT calc" in history and "wrote calc" in history and "x = 1 +" in history
    assert "calc.py:1 SyntaxError" in fix_req.prompt_text()
    # Cost is per call: the fix's own share, not the cumulative total the CLI reports.
    assert fixed.cost_usd == pytest.approx(first.cost_usd, rel=0.01)
    assert [s["phase"] for s in tracer.spans] == ["implement", "fix:lint"]


async def test_review_cannot_modify_the_worktree(cli_env: FakeAnthropicAPI, make_sdk, worktree: Path) -> None:
    (worktree / "src").mkdir()
    (worktree / "src/app.py").write_text("def f():\n    return 1\n")
    cli_env.script(
        Rule(
            prompt_contains="REVIEW",
            turns=[
                write("{cwd}/evil.txt", "pwned"),
                edit("{cwd}/src/app.py", "return 1", "return 2"),
                bash("touch {cwd}/evil2 && rm -f {cwd}/README.md"),
                Turn(
                    blocks=[
                        {
                            "type": "tool_use",
                            "name": "NotebookEdit",
                            "input": {"notebook_path": "{cwd}/n.ipynb", "new_source": "x"},
                        }
                    ]
                ),
                text("HAS_ISSUES: true\nFINDINGS:\n- src/app.py:2 should return 2"),
            ],
        )
    )
    before = snapshot(worktree)
    result = await make_sdk().review(request(worktree, "REVIEW this change"))

    assert snapshot(worktree) == before  # byte for byte
    assert result.ok and result.has_issues and "should return 2" in result.findings
    assert result.run is not None and result.run.turns == 5
    refusals = cli_env.message_requests()[-1].tool_results()
    assert len(refusals) == 4 and all("No such tool available" in r for r in refusals)
    offered = {t["name"] for t in cli_env.message_requests()[0].body["tools"]}
    assert {"Read", "Glob", "Grep"} <= offered
    assert not offered & {"Write", "Edit", "MultiEdit", "NotebookEdit", "Bash"}


async def test_malformed_review_is_a_reported_failure(
    cli_env: FakeAnthropicAPI, make_sdk, worktree: Path
) -> None:
    cli_env.script(Rule(prompt_contains="REVIEW", turns=[text("Looks fine to me.")]))
    result = await make_sdk().review(request(worktree, "REVIEW"))
    assert not result.ok and "HAS_ISSUES" in (result.error or "")
    assert result.run is not None and result.run.session_id


async def test_the_agent_environment_is_scrubbed(cli_env: FakeAnthropicAPI, make_sdk, worktree: Path) -> None:
    cli_env.script(Rule(prompt_contains="IMPLEMENT", turns=[bash("env"), text("done")]))
    claude = make_sdk(extra_allowed_tools=("Bash(env)",))
    run = await claude.implement(request(worktree, "IMPLEMENT"))

    output = cli_env.message_requests()[-1].tool_results()[0]
    assert "PATH=" in output and "CLAUDE_CONFIG_DIR=" in output  # the command really ran
    for name, value in PLANTED_SECRETS.items():
        assert value not in output, name
        assert f"{name}=" not in output, name
    assert run.permission_denials == []


async def test_commands_outside_the_allowlist_are_refused(
    cli_env: FakeAnthropicAPI, make_sdk, worktree: Path
) -> None:
    cli_env.script(
        Rule(
            prompt_contains="IMPLEMENT",
            turns=[
                bash("git push origin HEAD"),
                bash("curl -s http://127.0.0.1:9/"),
                bash("python3 -c \"open('made-by-python', 'w')\""),
                bash("git status"),
                text("done"),
            ],
        )
    )
    run = await make_sdk().implement(request(worktree, "IMPLEMENT"))
    assert not (worktree / "made-by-python").exists()
    assert run.permission_denials == [
        "Bash: git push origin HEAD",
        "Bash: curl -s http://127.0.0.1:9/",
        "Bash: python3 -c \"open('made-by-python', 'w')\"",
    ]
    results = cli_env.message_requests()[-1].tool_results()
    assert "denied" in results[0] and "denied" in results[1] and "requires approval" in results[2]
    assert "not a git repository" in results[3]  # an allowed read-only command really ran


async def test_max_turns(cli_env: FakeAnthropicAPI, make_sdk, worktree: Path) -> None:
    cli_env.script(Rule(prompt_contains="IMPLEMENT", turns=[bash("ls")]))  # keeps calling tools
    with pytest.raises(AgentError) as err:
        await make_sdk(CLAUDE_MAX_TURNS="2").implement(request(worktree, "IMPLEMENT"))
    assert err.value.terminal_reason == "max_turns"
    assert err.value.turns == 3 and err.value.session_id
    # Killed processes of a dying sandbox leave /proc a moment later (empty cmdline until reaped).
    assert wait_no_cli_under(worktree, within=3), cli_processes_under(worktree)


async def test_budget_exhausted(cli_env: FakeAnthropicAPI, make_sdk, worktree: Path) -> None:
    big = Turn(
        blocks=[{"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}],
        usage={"input_tokens": 2_000_000, "output_tokens": 10},
    )
    cli_env.script(Rule(prompt_contains="IMPLEMENT", turns=[big, text("done")]))
    with pytest.raises(AgentError) as err:
        await make_sdk(CLAUDE_MAX_BUDGET_USD="0.01").implement(request(worktree, "IMPLEMENT"))
    assert err.value.terminal_reason == "budget_exhausted"
    assert err.value.cost_usd > 0.01
    # Killed processes of a dying sandbox leave /proc a moment later (empty cmdline until reaped).
    assert wait_no_cli_under(worktree, within=3), cli_processes_under(worktree)


# 100k cache reads: the proxy meters $0.0525, over a $0.05 budget, while the CLI's own estimate
# stays under it (it prices cache reads lower): the CLI asks again and only the proxy stops it.
_METERED_OVER_5_CENTS = {"input_tokens": 0, "output_tokens": 100, "cache_read_input_tokens": 100_000}


@pytest.mark.parametrize(("turn", "budget", "how"), [
    (Turn(blocks=[{"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}],
          usage=_METERED_OVER_5_CENTS), 0.05, "cut off at the model proxy"),
    (Turn(blocks=[{"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}],
          usage={"input_tokens": 2_000_000, "output_tokens": 10}), 0.01, "after"),  # the CLI's own cap
], ids=["proxy", "cli"])
async def test_budget_exhausted_quotes_the_runs_own_budget(
        cli_env: FakeAnthropicAPI, make_sdk, worktree: Path, turn: Turn, budget: float, how: str) -> None:
    """The run's budget is its repository's (`AgentRequest.budget_usd`), not CLAUDE_MAX_BUDGET_USD:
    the failure quotes the one the run had."""
    cli_env.script(Rule(prompt_contains="IMPLEMENT", turns=[turn, turn, text("done")]))
    req = dataclasses.replace(request(worktree, "IMPLEMENT"), budget_usd=budget)
    with pytest.raises(AgentError) as err:
        await make_sdk(CLAUDE_MAX_BUDGET_USD="7").implement(req)
    assert err.value.terminal_reason == "budget_exhausted"
    assert f"the run's model budget of ${budget:g}" in err.value.detail, err.value.detail
    assert how in err.value.detail and "$7" not in err.value.detail


async def test_api_error_on_every_try(cli_env: FakeAnthropicAPI, make_sdk, worktree: Path) -> None:
    cli_env.script(Rule(prompt_contains="IMPLEMENT", turns=[error(500)]))
    started = time.monotonic()
    with pytest.raises(AgentError) as err:
        await make_sdk().implement(request(worktree, "IMPLEMENT"))
    assert err.value.terminal_reason == "api_error"
    assert "HTTP 500" in err.value.detail
    assert time.monotonic() - started < 15
    # Killed processes of a dying sandbox leave /proc a moment later (empty cmdline until reaped).
    assert wait_no_cli_under(worktree, within=3), cli_processes_under(worktree)


async def test_hung_model_times_out_and_the_cli_is_killed(
    cli_env: FakeAnthropicAPI, make_sdk, worktree: Path
) -> None:
    cli_env.script(Rule(prompt_contains="IMPLEMENT", turns=[hang()]))
    # 8 s: the sandboxed CLI must have started and reported its session before the hang even on a
    # loaded 2-core machine; the bound still tells our kill at the timeout from the SDK's own
    # EOF/TERM/KILL escalation (5 s + 5 s more).
    claude = make_sdk(CLAUDE_TIMEOUT_SEC="8")
    started = time.monotonic()
    with pytest.raises(AgentError) as err:
        await claude.implement(request(worktree, "IMPLEMENT"))
    assert err.value.terminal_reason == "timeout"
    assert 8 <= time.monotonic() - started < 8 + 4
    assert err.value.session_id  # known from the init message before the hang
    # Killed processes of a dying sandbox leave /proc a moment later (empty cmdline until reaped).
    assert wait_no_cli_under(worktree, within=3), cli_processes_under(worktree)


async def test_timeout_kills_the_commands_the_agent_started(
    cli_env: FakeAnthropicAPI, make_sdk, worktree: Path
) -> None:
    # A test command that hangs and shrugs off SIGTERM/SIGHUP: only a kill of the whole tree ends it.
    stubborn = (
        f'{sys.executable} -c "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); '
        'signal.signal(signal.SIGHUP, signal.SIG_IGN); time.sleep(300)"'
    )
    cli_env.script(Rule(prompt_contains="IMPLEMENT", turns=[bash(stubborn), text("done")]))
    claude = make_sdk(extra_allowed_tools=(f"Bash({sys.executable}:*)",), CLAUDE_TIMEOUT_SEC="8")
    started = time.monotonic()
    with pytest.raises(AgentError) as err:
        await claude.implement(request(worktree, "IMPLEMENT"))
    assert err.value.terminal_reason == "timeout"
    # Killed at the timeout - not after the SDK's own EOF/TERM/KILL escalation (5 s + 5 s).
    assert time.monotonic() - started < 8 + 4
    # Killed processes of a dying sandbox leave /proc a moment later (empty cmdline until reaped).
    assert wait_no_cli_under(worktree, within=3), cli_processes_under(worktree)


async def test_cancellation_kills_the_cli_tree(cli_env: FakeAnthropicAPI, make_sdk, worktree: Path) -> None:
    cli_env.script(Rule(prompt_contains="IMPLEMENT", turns=[hang()]))
    claude = make_sdk()
    task = asyncio.create_task(claude.implement(request(worktree, "IMPLEMENT")))
    deadline = time.monotonic() + 15
    while not cli_env.message_requests() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert cli_processes_under(worktree)
    task.cancel()
    cancelled_at = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - cancelled_at < 3  # killed, not waited for
    # Killed processes of a dying sandbox leave /proc a moment later (empty cmdline until reaped).
    assert wait_no_cli_under(worktree, within=3), cli_processes_under(worktree)
