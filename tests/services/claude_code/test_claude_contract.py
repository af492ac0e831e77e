"""The `ClaudeCode` contract, run against the scripted mock always and against the real CLI (with
the scripted model server) where it can be: same script, same observable outcome."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.models import Ticket
from app.prompts.ticket_prompts import fix_prompt, implementation_prompt, review_prompt
from app.services.claude_code.base import ClaudeCode
from app.services.claude_code.client import SdkClaudeCode
from app.services.claude_code.scripted import ScriptedClaudeCode
from tests.fakes.anthropic_api import FakeAnthropicAPI, Rule, text, write
from tests.services.claude_code.conftest import request

TICKET = Ticket(key="PROJ-1", summary="Add notes", description="Write notes.txt")
REVIEW_WITH_ISSUES = "HAS_ISSUES: true\nFINDINGS:\n- notes.txt:1 say more"


def build_mock(api: FakeAnthropicAPI, make_sdk: Any, **script: Any) -> ClaudeCode:
    return ScriptedClaudeCode(
        {
            "tickets": {
                "PROJ-1": {
                    "implement": [{"write": "notes.txt", "content": "v1\n"}],
                    "fix:lint": [[{"write": "notes.txt", "content": "v2\n"}]],
                    "review": [script.get("review", REVIEW_WITH_ISSUES)],
                }
            }
        }
    )


def build_sdk(api: FakeAnthropicAPI, make_sdk: Any, **script: Any) -> ClaudeCode:
    api.script(
        Rule(
            prompt_contains="You are implementing Jira ticket",
            turns=[write("{cwd}/notes.txt", "v1\n"), text("ok")],
        ),
        Rule(
            prompt_contains="[auto-code fix: gate=lint",
            turns=[write("{cwd}/notes.txt", "v2\n"), text("fixed")],
        ),
        Rule(prompt_contains="You are reviewing", turns=[text(script.get("review", REVIEW_WITH_ISSUES))]),
    )
    return make_sdk()


@pytest.fixture(
    params=[
        pytest.param(build_mock, id="mock"),
        pytest.param(build_sdk, id="sdk", marks=pytest.mark.real_cli),
    ]
)
def make_claude(
    request: pytest.FixtureRequest, cli_env: FakeAnthropicAPI, make_sdk: Any
) -> Callable[..., ClaudeCode]:
    # Both variants get the same fixtures (the mock simply ignores the model server).
    return lambda **script: request.param(cli_env, make_sdk, **script)


async def test_implement_then_fix_in_the_same_session(make_claude, worktree: Path) -> None:
    claude = make_claude()
    await claude.warm(worktree, "PROJ-1:warm")
    run = await claude.implement(request(worktree, implementation_prompt(TICKET)))
    assert (worktree / "notes.txt").read_text() == "v1\n"
    assert run.session_id and run.turns >= 1
    # The real CLI prices the usage the model server reports; the offline mock spends nothing.
    assert run.cost_usd > 0 if isinstance(claude, SdkClaudeCode) else run.cost_usd == 0.0
    fix = request(worktree, fix_prompt("lint", "notes.txt: too short", 1), gate="lint", round=1)
    fixed = await claude.fix(fix, run.session_id)
    assert (worktree / "notes.txt").read_text() == "v2\n"
    assert fixed.session_id == run.session_id
    await claude.aclose()


async def test_review_reports_issues_without_touching_files(make_claude, worktree: Path) -> None:
    claude = make_claude()
    before = (worktree / "README.md").read_bytes()
    result = await claude.review(request(worktree, review_prompt(TICKET, " notes.txt | 1 +")))
    assert result.ok and result.has_issues and "say more" in result.findings
    assert result.run is not None and result.error is None
    assert sorted(p.name for p in worktree.iterdir()) == ["README.md"]
    assert (worktree / "README.md").read_bytes() == before


async def test_malformed_review_is_reported_not_raised(make_claude, worktree: Path) -> None:
    claude = make_claude(review="I think it is fine.")
    result = await claude.review(request(worktree, review_prompt(TICKET, "")))
    assert not result.ok and result.error and "HAS_ISSUES" in result.error
