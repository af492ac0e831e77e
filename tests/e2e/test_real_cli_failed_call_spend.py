"""A failed agent call's spend, end to end with the REAL Claude Code CLI (sandboxed, through the
model proxy, against the scripted model server): the model answers some turns, then the call fails
(max turns reached; the run's budget cut off at the model proxy). The spend ledger records that
call's input, output and cache tokens - equal to the usage the model server reported, as the proxy
metered it - and its cost, like a finished call; and every place that shows the spend agrees with
the ledger: `GET /runs/{id}` (cost, turns), `/metrics` (tokens by kind, cost) and the dashboard's
spend page (calls, tokens, cost)."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.dashboard.render import money
from app.main import services_of
from app.services.spend import SpendTotal, TokenCounts
from tests.dashboard.test_spend_page import rows
from tests.e2e.conftest import IMPLEMENT, E2EService, step
from tests.fakes.anthropic_api import FakeAnthropicAPI, Rule, bash, text

pytestmark = pytest.mark.real_cli

OP = "operator-token-0123456789abcdef"
# Every kind distinct and non-zero, so a kind dropped or swapped shows.
TURN_USAGE = {"input_tokens": 1234, "output_tokens": 56, "cache_creation_input_tokens": 789,
              "cache_read_input_tokens": 4321}
# 100k cache reads: $0.0525 per answer as the proxy meters it; two answers pass a $0.10 budget.
COSTLY = {"input_tokens": 3, "output_tokens": 100, "cache_creation_input_tokens": 5,
          "cache_read_input_tokens": 100_000}


def reported_tokens(model: FakeAnthropicAPI) -> TokenCounts:
    """What the model server said it used, over every answer it sent."""
    u = model.reported_usage()
    return TokenCounts(input=u.get("input_tokens", 0), output=u.get("output_tokens", 0),
                       cache_creation=u.get("cache_creation_input_tokens", 0),
                       cache_read=u.get("cache_read_input_tokens", 0))


def metrics(svc: E2EService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = svc.client.get("/metrics", headers=svc.headers)
    assert resp.status_code == 200, resp.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def spend_page(svc: E2EService) -> str:
    """The dashboard's spend page, signed in through the real form (CSRF, same origin)."""
    origin = {"Origin": "http://testserver"}
    login = re.search(r'name="csrf_token" value="([^"]+)"', svc.client.get("/ui/login").text)
    assert login
    done = svc.client.post("/ui/login", data={"csrf_token": login.group(1), "token": OP, "next": "/ui/spend"},
                           headers=origin, follow_redirects=False)
    assert done.status_code == 303, done.text
    page = svc.client.get("/ui/spend")
    assert page.status_code == 200
    return page.text


def assert_the_ledger_holds_the_failed_call(svc: E2EService, run: dict[str, Any]) -> SpendTotal:
    """The ledger's figures for the run are the model server's tokens and the run's cost, and the
    runs API, /metrics and the spend page show the same."""
    reported = reported_tokens(svc.model)
    assert reported.output > 0 and reported.cache_read > 0, "the model answered nothing: proves nothing"
    total = svc.client.portal.call(services_of(svc.app).deps.spend.ledger.run_total, run["run_id"])
    assert total.calls == 1  # the failed implement call, under its own id
    assert total.tokens == reported, (total.tokens, reported)
    assert total.cost_usd > 0 and run["cost_usd"] == pytest.approx(total.cost_usd, abs=1e-6)
    assert run["turns"] > 0  # the CLI's count of the failed call's turns, recorded with its cost

    m = metrics(svc)
    for kind, n in reported.as_dict().items():
        assert m["auto_code_model_tokens_total", (("kind", kind),)] == n, kind
    assert m["auto_code_model_cost_usd_total", ()] == pytest.approx(total.cost_usd)

    page = spend_page(svc)
    all_tokens = sum(reported.as_dict().values())
    assert rows(page, "spend-projects") == {"PROJ": ["1", f"{all_tokens:,}", money(total.cost_usd)]}
    assert f'id="spend-total">{money(total.cost_usd)}<' in page
    return total


def test_max_turns_after_answered_turns_records_their_tokens(
        e2e: Callable[..., AbstractContextManager[E2EService]], model: FakeAnthropicAPI) -> None:
    # The model keeps calling a tool: the CLI stops at its turn limit after the answers it got.
    model.script(Rule(prompt_contains=IMPLEMENT, turns=[bash("ls", usage=TURN_USAGE)]))
    with e2e(CLAUDE_MAX_TURNS="2", OPERATOR_TOKEN=OP, DRY_RUN="1") as svc:
        svc.headers["Authorization"] = f"Bearer {OP}"
        run = svc.run("PROJ-71")
        assert run["status"] == "failed" and step(run, "implement")["status"] == "failed", run
        assert "max_turns" in (run["error"] or ""), run["error"]
        assert len(model.reported) == 2  # the turns the model answered before the limit
        assert_the_ledger_holds_the_failed_call(svc, run)
        assert run["turns"] == 3  # the CLI's num_turns at max_turns=2 (shared/notes/claude-cli.md)


def test_a_budget_cut_off_at_the_model_proxy_records_the_answered_turns_tokens(
        e2e: Callable[..., AbstractContextManager[E2EService]], model: FakeAnthropicAPI) -> None:
    model.script(Rule(prompt_contains=IMPLEMENT,
                      turns=[bash("ls", usage=COSTLY), bash("ls", usage=COSTLY), text("done")]))
    with e2e(CLAUDE_MAX_BUDGET_USD="0.1", OPERATOR_TOKEN=OP, DRY_RUN="1") as svc:
        svc.headers["Authorization"] = f"Bearer {OP}"
        run = svc.run("PROJ-72")
        assert run["status"] == "failed", run
        assert "cut off at the model proxy" in (run["error"] or ""), run["error"]
        assert len(model.reported) == 2  # two answers, then the proxy refused the third request
        total = assert_the_ledger_holds_the_failed_call(svc, run)
        assert total.cost_usd > 0.1
