"""Fairness between repositories through the real service (DBOS queue, SQLite): a burst of tickets
for one repository does not keep another repository's ticket waiting behind it.

Each run's repository is decided before the run is handed to the queue and is its queue partition,
so the queue takes runs of each repository on their own (app/repositories/fairness.py). The burst's
runs are held inside the agent call (an event the test sets; no sleeps, no timing): the other
repository's run must get through while every one of them is still held."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from app.composition import Collaborators
from app.config import Settings
from app.services.claude_code.base import AgentRequest, AgentRun
from app.services.claude_code.scripted import ScriptedClaudeCode
from tests.repositories.kit import serve

BURST = 5  # web tickets: more than the queue took at once before (MAX_CONCURRENT_RUNS x 2 = 4)


class HeldWeb(ScriptedClaudeCode):
    """The scripted agent, except that a web ticket's implement waits until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.held: list[str] = []

    async def implement(self, req: AgentRequest) -> AgentRun:
        if req.ticket_key.startswith("WEB-"):
            self.held.append(req.ticket_key)
            while not self.release.is_set():  # the DBOS loop keeps running the other runs meanwhile
                await asyncio.sleep(0.02)
        return await super().implement(req)


def test_a_burst_for_one_repository_does_not_starve_the_other(tmp_path: Path, two: dict[str, Any]) -> None:
    agent = HeldWeb()

    def collaborators(_: Settings) -> Collaborators:
        return Collaborators(claude=agent)

    # Two slots in all; web may use one of them (its share): the other is the api repository's to take.
    with serve(tmp_path, two, collaborators=collaborators, MAX_CONCURRENT_RUNS="2",
               web_extra="max_concurrent_runs = 1") as svc:
        try:
            web = [svc.deliver(f"WEB-{n}", "Banner", components=[{"name": "Frontend"}])["run_id"]
                   for n in range(1, BURST + 1)]
            api = svc.deliver("API-1", "Add an endpoint")["run_id"]
            api_run = svc.wait(api)
            during = [svc.client.get(f"/runs/{run_id}").json()["status"] for run_id in web]
            held = list(agent.held)
        finally:
            agent.release.set()
        web_runs = [svc.wait(run_id) for run_id in web]
    assert api_run["status"] == "succeeded", api_run["error"]
    assert api_run["repository"] == "api"
    # api finished while the whole web burst was still held or waiting: nothing of web had ended,
    # and only web's share (one run) was inside the agent.
    assert all(status in ("queued", "running") for status in during), during
    # (which one is not fixed: two of web's runs are taken off the queue at once, MAX_CONCURRENT_RUNS
    # per partition, and either may take web's share first)
    assert len(held) == 1 and held[0].startswith("WEB-"), held
    assert [r["status"] for r in web_runs] == ["succeeded"] * BURST, [r["error"] for r in web_runs]
    assert {r["repository"] for r in web_runs} == {"web"}
    assert [p["head"] for p in two["gh_api"].prs] == ["ticket/api-1"]
    assert sorted(p["head"] for p in two["gh_web"].prs) == [f"ticket/web-{n}" for n in range(1, BURST + 1)]
