"""Intake under a Jira bulk change and across hosts (issue 10), with real service processes:
- a bulk change: 400 distinct, authenticated deliveries from one address, 16 at a time, with the
  default abuse limit: every one 202 `queued`, every one handed to the DBOS queue (nothing lost);
  the same address without the secret still gets 429 past RATE_LIMIT. SQLite and PostgreSQL;
- two hosts, one PostgreSQL: the same ticket delivered to both at once makes one run; a record a
  host accepted and never handed off (killed at that moment, never restarted) is run by the other;
- two hosts sharing their rate-limit counters in the real Redis at 127.0.0.1:6379.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.durability.conftest import EnvBuilder
from tests.durability.service_proc import Procs, ServiceProc, db_rows, is_final, workflow_executors
from tests.procs import wait_until

pytestmark = pytest.mark.slow

TOKEN = "bulk-change-token-0123456789abcdef"
REDIS_URL = "redis://127.0.0.1:6379/0"


async def _send(url: str, keys: list[str], *, token: str | None, concurrency: int = 16,
                client: str | None = None) -> list[httpx.Response]:
    headers = {"X-Webhook-Token": token} if token else {}
    if client:
        headers["X-Forwarded-For"] = client  # the test talks from 127.0.0.1, a trusted proxy
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_connections=concurrency)) as http:
        async def one(key: str) -> httpx.Response:
            async with gate:
                return await http.post("/webhook/jira", json={"key": key, "summary": "bulk"}, headers=headers)

        return await asyncio.gather(*(one(k) for k in keys))


def test_a_bulk_change_of_400_tickets_from_one_address_is_accepted_in_full(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, database_url: str | None
) -> None:
    ws = tmp_path / "ws"
    env = service_env(ws, {"delay_s": 0.0}, DATABASE_URL=database_url, WEBHOOK_SECRET=TOKEN,
                      RATE_LIMIT="10/minute", QUEUE_POLL_INTERVAL_SEC="30")  # authenticated: the default
    svc = procs.new("service", env, tmp_path / "proc")
    svc.start()
    keys = [f"BULK-{n}" for n in range(1, 401)]

    answers = asyncio.run(_send(svc.url, keys, token=TOKEN))

    assert Counter(r.status_code for r in answers) == {202: 400}
    bodies = [r.json() for r in answers]
    assert Counter(b["status"] for b in bodies) == {"queued": 400}
    run_ids = {b["run_id"] for b in bodies}
    # Nothing lost: every 202 is a record, and every record reaches the DBOS queue.
    db_url = database_url or f"sqlite:///{ws / 'auto-code.sqlite'}"
    assert wait_until(lambda: run_ids <= set(workflow_executors(db_url)), within=60), svc.log_tail()
    rows = db_rows(db_url, "select run_id, enqueued_at from ac_runs")
    assert {r["run_id"] for r in rows} == run_ids and all(r["enqueued_at"] is not None for r in rows)
    # The abuse limit is still there for the same address without the secret.
    anonymous = asyncio.run(_send(svc.url, [f"ANON-{n}" for n in range(1, 13)], token=None, concurrency=1))
    assert [r.status_code for r in anonymous] == [401] * 10 + [429] * 2


@pytest.mark.postgres
def test_two_hosts_one_database_dedup_and_take_over_what_a_dead_host_never_handed_off(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, pg_database: str
) -> None:
    marker = tmp_path / "held"
    hosts: list[ServiceProc] = []
    for name in ("host-a", "host-b"):
        env = service_env(tmp_path / name / "ws", {"delay_s": 1.0}, EXECUTOR_ID=name, APP_VERSION="1",
                          DATABASE_URL=pg_database)
        hosts.append(procs.new(name, env, tmp_path / name))
    a, b = hosts
    a.start()
    b.start()

    # The same ticket to both hosts at once, 20 deliveries each: one run.
    async def both() -> list[httpx.Response]:
        at_a = _send(a.url, ["PROJ-7"] * 20, token=None, concurrency=20)
        at_b = _send(b.url, ["PROJ-7"] * 20, token=None, concurrency=20)
        return [r for rs in await asyncio.gather(at_a, at_b) for r in rs]

    bodies = [r.json() for r in asyncio.run(both())]
    assert Counter(x["status"] for x in bodies) == {"queued": 1, "duplicate": 39}
    assert len({x["run_id"] for x in bodies}) == 1
    first = a.wait_run(bodies[0]["run_id"], is_final, timeout=40, what="final status")
    assert first["status"] == "succeeded", first["error"]

    # host-a accepts a ticket and dies before handing it off (held there), never restarted.
    a.stop()
    a.env = {**a.env, "AUTO_CODE_TEST_DISPATCH_HOLD": f"before:{marker}", "QUEUE_WORKER": "false"}
    a.start()
    orphan = a.deliver("PROJ-8")
    assert orphan["status"] == "queued"
    assert wait_until(marker.exists, within=20), a.log_tail()
    a.kill9()
    assert orphan["run_id"] not in workflow_executors(pg_database)
    # host-b's dispatcher finds the record past its grace period and hands it off; host-b runs it.
    done = b.wait_run(orphan["run_id"], is_final, timeout=60, what="final status")
    assert done["status"] == "succeeded", done["error"]
    assert workflow_executors(pg_database)[orphan["run_id"]] == ("SUCCESS", "host-b")
    assert [r["run_id"] for r in b.runs("PROJ-8")] == [orphan["run_id"]]


def _redis_reachable() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        return None
    except Exception as exc:
        return f"Redis at {REDIS_URL} unreachable: {exc}"


def test_two_hosts_share_their_rate_limit_counters_in_redis(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder
) -> None:
    if reason := _redis_reachable():
        pytest.skip(reason)
    hosts = []
    for name in ("host-a", "host-b"):  # each its own SQLite: only the counters are shared
        env = service_env(tmp_path / name / "ws", {"delay_s": 0.0}, EXECUTOR_ID=name, WEBHOOK_SECRET=TOKEN,
                          RATE_LIMIT="4/minute", RATE_LIMIT_AUTHENTICATED="6/minute",
                          RATE_LIMIT_STORAGE_URL=REDIS_URL, QUEUE_POLL_INTERVAL_SEC="30")
        hosts.append(procs.new(name, env, tmp_path / name))
    for host in hosts:
        host.start()
    a, b = hosts
    # A client address of its own (documentation range), so no other test's counters are in the way.
    client = str(ipaddress.IPv6Address("2001:db8::") + secrets.randbits(64))

    def codes(host: ServiceProc, keys: list[str], token: str | None) -> list[int]:
        return [r.status_code for r in asyncio.run(_send(host.url, keys, token=token, concurrency=1,
                                                         client=client))]

    # The abuse budget (4 a minute) is spent on both hosts together: 2 + 2, then both refuse.
    assert codes(a, ["UN-1", "UN-2"], None) == [401, 401]
    assert codes(b, ["UN-3", "UN-4"], None) == [401, 401]
    assert codes(a, ["UN-5"], None) == [429] and codes(b, ["UN-6"], None) == [429]
    # The authenticated budget (6 a minute) likewise: 3 + 3, then both refuse.
    assert codes(a, ["AU-1", "AU-2", "AU-3"], TOKEN) == [202] * 3
    assert codes(b, ["AU-4", "AU-5", "AU-6"], TOKEN) == [202] * 3
    assert codes(b, ["AU-7"], TOKEN) == [429] and codes(a, ["AU-8"], TOKEN) == [429]
