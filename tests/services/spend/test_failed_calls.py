"""A failed agent call is in the spend ledger like a finished one: its cost and its tokens by kind
(the real app, DBOS on SQLite, real git, the scripted Claude whose failures report metered figures,
as the real client's do: tests/e2e/test_real_cli_failed_call_spend.py runs the real CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.services.runner.harness import Service, running_service

USAGE = {"input_tokens": 1000, "output_tokens": 100, "cache_creation_input_tokens": 70,
         "cache_read_input_tokens": 5000}
FIGURES = (0.2, 1000, 100, 70, 5000)


def ledger_rows(svc: Service, run_id: str) -> list[tuple[object, ...]]:
    query = sa.text("SELECT call_id, cost_usd, input_tokens, output_tokens, cache_creation_input_tokens, "
                    "cache_read_input_tokens FROM ac_spend WHERE run_id = :r ORDER BY call_id")
    with svc.services.store.sync.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query, {"r": run_id}).all()]


def test_a_failed_implement_records_its_tokens(tmp_path: Path) -> None:
    script = {"tickets": {"PROJ-6": {"errors": {"implement": "max_turns"}, "cost_usd": 0.2, "usage": USAGE}}}
    with running_service(tmp_path, script) as svc:
        run = svc.run("PROJ-6")
        rows = ledger_rows(svc, run["run_id"])
        total = svc.client.portal.call(svc.services.deps.spend.ledger.run_total, run["run_id"])
    assert run["status"] == "failed" and "max_turns" in (run["error"] or "")
    assert rows == [("implement", *FIGURES)]
    assert total.cost_usd == pytest.approx(run["cost_usd"]) == pytest.approx(0.2)


def test_a_failed_fix_round_records_its_tokens_beside_the_finished_implement(tmp_path: Path) -> None:
    script = {"tickets": {"PROJ-7": {"implement": [{"write": "bad.md", "content": "x  \n"}],  # lint fails
                                     "errors": {"fix:lint": "api_error"}, "cost_usd": 0.2, "usage": USAGE}}}
    with running_service(tmp_path, script, ENABLE_LINT=1) as svc:
        run = svc.run("PROJ-7")
        rows = ledger_rows(svc, run["run_id"])
    assert run["status"] == "failed" and "api_error" in (run["error"] or ""), run["error"]
    assert rows == [("implement", *FIGURES), ("lint:fix:1", *FIGURES)]
    assert run["cost_usd"] == pytest.approx(0.4)
