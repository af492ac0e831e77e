"""A failed call with the REAL Claude Code CLI (sandboxed, through the model proxy) against the
scripted Messages API: the `AgentError` carries the tokens the model proxy metered for the turns the
model did answer, by kind, equal to the usage the model server reported - the same figures a
finished call's `AgentRun.usage` has, so the spend ledger records a failed call like a finished one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from app.errors import AgentError
from app.services.claude_code.base import AgentRequest
from tests.fakes.anthropic_api import FakeAnthropicAPI, Rule, Turn, bash, error, text
from tests.services.claude_code.conftest import request

pytestmark = pytest.mark.real_cli

KINDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
# Every kind distinct and non-zero, so a kind dropped or swapped shows.
TURN_USAGE = {"input_tokens": 1234, "output_tokens": 56, "cache_creation_input_tokens": 789,
              "cache_read_input_tokens": 4321}
# 100k cache reads: $0.0525 as the proxy meters it, over a $0.05 budget after one answer, while the
# CLI's own estimate stays under it: only the proxy stops the call (tests/e2e budget test says why).
COSTLY = {"input_tokens": 3, "output_tokens": 100, "cache_creation_input_tokens": 5,
          "cache_read_input_tokens": 100_000}


def tokens(usage: dict[str, object]) -> dict[str, object]:
    return {kind: usage.get(kind, 0) for kind in KINDS}


def expected(model: FakeAnthropicAPI) -> dict[str, object]:
    reported = model.reported_usage()
    assert reported.get("output_tokens", 0) > 0, "the model answered nothing: the test proves nothing"
    return {kind: reported.get(kind, 0) for kind in KINDS}


@pytest.mark.parametrize(("turns", "settings", "budget", "reason"), [
    ([bash("ls", usage=TURN_USAGE)], {"CLAUDE_MAX_TURNS": "2"}, None, "max_turns"),  # repeats: tools
    ([bash("ls", usage=COSTLY), text("done")], {"CLAUDE_MAX_BUDGET_USD": "7"}, 0.05, "budget_exhausted"),
    ([bash("ls", usage=TURN_USAGE), bash("ls", usage=TURN_USAGE), error(500)], {}, None, "api_error"),
    # No result message at all: the CLI is killed at the timeout while the model's second answer
    # hangs after its message_start (whose usage the proxy metered). 8 s: see the hung-model test.
    ([bash("ls", usage=TURN_USAGE), Turn(blocks=[{"type": "text", "text": "..."}], usage=TURN_USAGE,
                                         hang=True)], {"CLAUDE_TIMEOUT_SEC": "8"}, None, "timeout"),
], ids=["max_turns", "proxy_budget_cutoff", "api_error", "timeout"])
async def test_a_failed_call_carries_the_tokens_the_model_reported(
        cli_env: FakeAnthropicAPI, make_sdk, worktree: Path, turns: list[Turn], settings: dict[str, str],
        budget: float | None, reason: str) -> None:
    cli_env.script(Rule(prompt_contains="IMPLEMENT", turns=turns))
    req: AgentRequest = dataclasses.replace(request(worktree, "IMPLEMENT"), budget_usd=budget)
    with pytest.raises(AgentError) as err:
        await make_sdk(**settings).implement(req)
    assert err.value.terminal_reason == reason, err.value.detail
    assert err.value.usage.get("metered_by") == "model_proxy"
    assert tokens(err.value.usage) == expected(cli_env)
    assert err.value.usage["requests"] == len(cli_env.message_requests())
    assert err.value.cost_usd > 0 and err.value.turns > 0


async def test_a_failed_review_reports_the_tokens_the_model_reported(
        cli_env: FakeAnthropicAPI, make_sdk, worktree: Path) -> None:
    cli_env.script(Rule(prompt_contains="REVIEW", turns=[bash("ls", usage=TURN_USAGE)]))
    req = dataclasses.replace(request(worktree, "REVIEW the change"), phase="review")
    result = await make_sdk(CLAUDE_MAX_TURNS="2", CLAUDE_REVIEW_MAX_TURNS="2").review(req)
    assert not result.ok and "max_turns" in (result.error or ""), result.error
    assert result.run is not None and tokens(result.run.usage) == expected(cli_env)
