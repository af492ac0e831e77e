"""The spend page against the real service: the spend ledger's figures per day and per project and
the caps against them (calls recorded through the service's own ledger), and the fallback that sums
run records when a service has no ledger."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from app.dashboard.spend import from_runs
from app.main import services_of
from app.models import RunView
from app.services.spend import CallSpend, TokenCounts
from tests.dashboard.live_service import LiveService, live_service

OP = "operator-token-0123456789abcdef"


def signed_in_client(svc: LiveService) -> httpx.Client:
    """A client holding a dashboard session, signed in through the real form."""
    client = httpx.Client(base_url=svc.url, timeout=10)
    page = client.get("/ui/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, page.text
    done = client.post("/ui/login", data={"csrf_token": csrf.group(1), "token": OP, "next": "/ui/spend"},
                       headers={"Origin": svc.url})
    assert done.status_code == 303, done.text
    return client


def rows(html: str, table: str) -> dict[str, list[str]]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    out = {}
    for label, cells in re.findall(r'<tr data-label="([^"]+)">(.*?)</tr>', body, re.S):
        texts = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)]
        assert texts[0] == label
        out[label] = texts[1:]
    return out


def test_spend_page_shows_the_ledger_per_day_and_project_against_the_caps(tmp_path: Path) -> None:
    caps = {"SPEND_CAP_DAILY_USD": "2", "SPEND_PROJECT_DAILY_CAPS_USD": "OPS=1"}
    with live_service(tmp_path, OPERATOR_TOKEN=OP, **caps) as svc:
        ledger = services_of(svc.app).deps.spend.ledger
        calls = [("PROJ-1:a", "PROJ-1", "implement", 0.75, TokenCounts(input=100, output=20, cache_read=900)),
                 ("PROJ-1:a", "PROJ-1", "lint:fix:1", 0.25, TokenCounts(input=10, output=5)),
                 ("OPS-2:b", "OPS-2", "implement", 0.9, TokenCounts(input=1, output=1, cache_creation=48))]

        async def record() -> None:
            for run_id, ticket, call_id, cost, tokens in calls:
                await ledger.record(run_id, ticket, CallSpend(call_id=call_id, cost_usd=cost, tokens=tokens))
            # the same call again replaces its figures (a replayed step): counted once
            await ledger.record("PROJ-1:a", "PROJ-1", CallSpend(call_id="lint:fix:1", cost_usd=0.25,
                                                                 tokens=TokenCounts(input=10, output=5)))

        asyncio.run(record())
        client = signed_in_client(svc)
        try:
            page = client.get("/ui/spend")
        finally:
            client.close()
        anonymous = httpx.get(f"{svc.url}/ui/spend", timeout=10)
    today = datetime.now(UTC).date().isoformat()
    assert page.status_code == 200
    assert rows(page.text, "spend-days") == {today: ["3", "1,085", "$1.9000"]}
    assert rows(page.text, "spend-projects") == {"PROJ": ["2", "1,035", "$1.0000"],
                                                 "OPS": ["1", "50", "$0.9000"]}
    caps = page.text.split('id="spend-caps"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"daily · all projects.*?\$1\.9000.*?\$2\.0000.*?95%.*?warning", caps, re.S)
    assert re.search(r"daily · project OPS.*?\$0\.9000.*?\$1\.0000.*?90%.*?warning", caps, re.S)
    assert anonymous.status_code == 303  # the page needs a session


def test_without_a_ledger_the_run_records_are_summed() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)

    def run(ticket: str, cost: float, days_ago: int) -> RunView:
        at = now - timedelta(days=days_ago)
        return RunView(run_id=f"{ticket}:x{days_ago}{cost}", ticket=ticket, status="succeeded", created_at=at,
                       updated_at=at, cost_usd=cost)

    report = from_runs([run("PROJ-1", 0.5, 0), run("PROJ-2", 0.25, 0), run("OPS-1", 1.0, 1),
                        run("OLD-1", 9.0, 30)], now)
    assert [(d.label, d.runs, d.cost_usd) for d in report.days] == [("2026-12-01", 2, 0.75),
                                                                    ("2026-11-30", 1, 1.0)]
    assert [(p.label, p.runs, p.cost_usd) for p in report.projects] == [("OPS", 1, 1.0), ("PROJ", 2, 0.75)]
    assert report.total == 1.75  # OLD-1 is outside the 30-day window
