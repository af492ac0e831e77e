"""ScriptedClaudeCode: really edits the worktree from its script, records every call, and the
factory picks it (or the real client) from settings."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.errors import AgentError
from app.models import Ticket
from app.prompts.ticket_prompts import fix_prompt, implementation_prompt, review_prompt
from app.services.claude_code import ScriptedClaudeCode, SdkClaudeCode, build_claude_code
from app.services.claude_code.base import AgentRequest

TICKET = Ticket(key="PROJ-12", summary="Add a greeting page", description="Say hello.")


def req(cwd: Path, prompt: str, key: str = "PROJ-12", run_id: str = "PROJ-12:r1", *,
        gate: str | None = None, round: int = 0) -> AgentRequest:
    return AgentRequest(cwd=cwd, prompt=prompt, ticket_key=key, run_id=run_id,
                        phase="fix" if gate else "implement", gate=gate, round=round)


async def test_default_script_writes_the_ticket_note(tmp_path: Path) -> None:
    claude = ScriptedClaudeCode()
    run = await claude.implement(req(tmp_path, implementation_prompt(TICKET)))
    note = tmp_path / "docs" / "tickets" / "proj-12.md"
    assert note.read_text() == "# PROJ-12: Add a greeting page\n"
    assert run.session_id.startswith("mock-proj-12-") and run.turns == 2
    assert [c.phase for c in claude.calls] == ["implement"]
    assert claude.calls[0].cwd == tmp_path and claude.calls[0].session_id == run.session_id
    review = await claude.review(req(tmp_path, review_prompt(TICKET, "diff")))
    assert review.ok and not review.has_issues


async def test_scripted_actions_fix_rounds_and_reviews(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("x = 1\n")
    script = {
        "tickets": {
            "PROJ-12": {
                "implement": [{"write": "src/new.py", "content": "print('{key}')\n"}, {"delete": "app.py"}],
                "fix:lint": [
                    [{"replace": "src/new.py", "old": "print", "new": "log"}],
                    [{"append": "src/new.py", "content": "# round 2+\n"}],
                ],
                "review": [
                    "HAS_ISSUES: true\nFINDINGS:\n- src/new.py:1 use logging",
                    "HAS_ISSUES: false\nFINDINGS:\nnone",
                ],
                "result": "Did it.",
            }
        }
    }
    claude = ScriptedClaudeCode(script)
    run = await claude.implement(req(tmp_path, "implement"))
    assert run.result_text == "Did it."
    assert (tmp_path / "src/new.py").read_text() == "print('PROJ-12')\n" and not (
        tmp_path / "app.py"
    ).exists()

    first = await claude.review(req(tmp_path, "review"))
    assert first.ok and first.has_issues and "use logging" in first.findings
    assert (await claude.review(req(tmp_path, "review"))).has_issues is False

    for n in (1, 2, 3):
        fix = req(tmp_path, fix_prompt("lint", "E1", n), gate="lint", round=n)
        fixed = await claude.fix(fix, run.session_id)
        assert fixed.session_id == run.session_id  # a resume keeps the session
    assert (tmp_path / "src/new.py").read_text() == "log('PROJ-12')\n# round 2+\n# round 2+\n"
    assert [c.phase for c in claude.calls] == [
        "implement",
        "review",
        "review",
        "fix:lint",
        "fix:lint",
        "fix:lint",
    ]
    assert {c.session_id for c in claude.calls if c.phase == "fix:lint"} == {run.session_id}


async def test_flat_fix_list_and_unscripted_gate(tmp_path: Path) -> None:
    claude = ScriptedClaudeCode({"tickets": {"*": {"fix": [{"append": "log.txt", "content": "x"}]}}})
    await claude.fix(req(tmp_path, fix_prompt("test", "F", 1), gate="test", round=1), "s1")
    await claude.fix(req(tmp_path, fix_prompt("lint", "F", 2), gate="lint", round=2), "s1")
    assert (tmp_path / "log.txt").read_text() == "xx"


async def test_scripted_errors_raise_agent_error(tmp_path: Path) -> None:
    claude = ScriptedClaudeCode(
        {"tickets": {"*": {"errors": {"implement": "max_turns", "review": "api_error"}}}}
    )
    with pytest.raises(AgentError) as err:
        await claude.implement(req(tmp_path, "x"))
    assert err.value.terminal_reason == "max_turns"
    review = await claude.review(req(tmp_path, "x"))
    assert not review.ok and "api_error" in (review.error or "")


async def test_a_path_outside_the_worktree_is_refused(tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    wt.mkdir()
    claude = ScriptedClaudeCode(
        {"tickets": {"*": {"implement": [{"write": "../escape.txt", "content": "x"}]}}}
    )
    with pytest.raises(AgentError, match="escapes the worktree"):
        await claude.implement(req(wt, "x"))
    assert not (tmp_path / "escape.txt").exists()


async def test_malformed_review_is_reported(tmp_path: Path) -> None:
    claude = ScriptedClaudeCode({"tickets": {"*": {"review": ["Looks great!"]}}})
    review = await claude.review(req(tmp_path, "x"))
    assert not review.ok and "HAS_ISSUES" in (review.error or "")


async def test_script_from_the_environment_file(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(
        json.dumps({"delay_s": 0.01, "tickets": {"*": {"implement": [{"write": "a", "content": "1"}]}}})
    )
    claude = ScriptedClaudeCode.from_env({"MOCK_CLAUDE_SCRIPT": str(path)})
    assert claude.delay_s == 0.01
    await claude.implement(req(tmp_path, "x"))
    assert (tmp_path / "a").read_text() == "1"
    assert ScriptedClaudeCode.from_env({}).script == {}


async def test_delay_is_cancellable_and_the_call_recorded(tmp_path: Path) -> None:
    claude = ScriptedClaudeCode(delay_s=30)
    task = asyncio.create_task(claude.implement(req(tmp_path, implementation_prompt(TICKET))))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [c.phase for c in claude.calls] == ["implement"]
    assert not (tmp_path / "docs").exists()


def test_factory_picks_by_settings_and_builds_anew(settings_factory) -> None:
    mock_settings = settings_factory()
    sdk_settings = settings_factory(CLAUDE_CLIENT="sdk", ANTHROPIC_API_KEY="sk-ant-x")
    mock = build_claude_code(mock_settings)
    assert isinstance(mock, ScriptedClaudeCode)
    assert isinstance(build_claude_code(sdk_settings), SdkClaudeCode)
    assert build_claude_code(mock_settings) is not mock  # no cache: built once by the root
