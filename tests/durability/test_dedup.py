"""Dedup under real concurrency: 50 identical deliveries at once to a real service process make
exactly one run (one `queued`, 49 `duplicate` naming it), on SQLite and on PostgreSQL. Once that
run has ended, the ticket's key is free again: the next delivery is a new run."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.durability.conftest import EnvBuilder
from tests.durability.service_proc import Procs, is_final

pytestmark = pytest.mark.slow

DELIVERIES = 50


async def _burst(url: str, key: str, n: int) -> list[httpx.Response]:
    body = {"key": key, "summary": "Same ticket, many deliveries"}
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_connections=n)) as client:
        return await asyncio.gather(*(client.post("/webhook/jira", json=body) for _ in range(n)))


def test_fifty_concurrent_deliveries_make_one_run(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, database_url: str | None
) -> None:
    # The run stays active (slow scripted implement) for the whole burst, so every delivery but
    # one must be answered `duplicate`.
    env = service_env(tmp_path / "ws", {"delay_s": 2.0}, DATABASE_URL=database_url)
    svc = procs.new("service", env, tmp_path / "proc")
    svc.start()

    responses = asyncio.run(_burst(svc.url, "PROJ-50", DELIVERIES))

    assert [r.status_code for r in responses] == [202] * DELIVERIES, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert Counter(b["status"] for b in bodies) == {"queued": 1, "duplicate": DELIVERIES - 1}
    run_id = next(b["run_id"] for b in bodies if b["status"] == "queued")
    assert {b["run_id"] for b in bodies} == {run_id}
    assert [r["run_id"] for r in svc.runs("PROJ-50")] == [run_id]

    done = svc.wait_run(run_id, is_final, timeout=30, what="final status")
    assert done["status"] == "succeeded", done["error"]
    again = svc.deliver("PROJ-50")
    assert again["status"] == "queued" and again["run_id"] != run_id
    assert len(svc.runs("PROJ-50")) == 2
    svc.wait_run(again["run_id"], is_final, timeout=30, what="final status")
