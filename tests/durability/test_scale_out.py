"""Scale-out on one PostgreSQL (issue 5, item 5), with real service processes.

Two hosts (EXECUTOR_ID host-a and host-b), each with its own WORKSPACE_DIR and clone of the same
bare remote, share one database: one queue, one dedup index.
- A batch of tickets delivered to both hosts is split between them, each ticket runs once, one PR
  each (local PR records are per host, so "one PR" is checked across both hosts' files).
- host-a is killed with `kill -9` mid-run and never restarted: its runs are not taken over by
  themselves; the documented `auto-code recover --executor host-a` (run as a one-off process with its
  own EXECUTOR_ID and workspace) gets them finished on host-b, with one PR per ticket and dedup
  intact during the new runs.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from app.services.github.local import LocalPullRequests
from tests.durability.conftest import EnvBuilder
from tests.durability.service_proc import (
    Procs,
    ServiceProc,
    is_final,
    recover_cli,
    step_status,
    workflow_executors,
)
from tests.fakes.jira_api import FakeJira

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DEAD_DELAY_S = 4.0  # scripted implement time in the dead-host test: host-b stays busy through `recover`


def _hosts(tmp_path: Path, procs: Procs, service_env: EnvBuilder, db: str, delay_s: float,
           slots: tuple[int, int] = (2, 2)) -> tuple[ServiceProc, ServiceProc]:
    hosts = []
    for name, n in zip(("host-a", "host-b"), slots, strict=True):
        env = service_env(tmp_path / name / "ws", {"delay_s": delay_s}, EXECUTOR_ID=name, APP_VERSION="1",
                          DATABASE_URL=db, MAX_CONCURRENT_RUNS=str(n))
        hosts.append(procs.new(name, env, tmp_path / name))
    # The first host creates the DBOS schema; the second starts once it is up (deployment-plan §9).
    hosts[0].start()
    hosts[1].start()
    return hosts[0], hosts[1]


def _pr_heads(*workspaces: Path) -> Counter[str]:
    heads: Counter[str] = Counter()
    for ws in workspaces:
        heads.update(p["head"] for p in LocalPullRequests(ws / "pull-requests.json").records())
    return heads


def _wait(predicate: Any, timeout: float, what: str, *hosts: ServiceProc) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout}s\n" + "\n".join(h.log_tail(15) for h in hosts))


def test_two_hosts_split_a_batch_each_ticket_once(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, pg_database: str
) -> None:
    a, b = _hosts(tmp_path, procs, service_env, pg_database, delay_s=1.0)
    keys = [f"PROJ-{n}" for n in range(1, 7)]
    run_ids: dict[str, str] = {}
    for i, key in enumerate(keys):
        first, second = (a, b) if i % 2 == 0 else (b, a)
        got = first.deliver(key)
        assert got["status"] == "queued"
        # The same ticket delivered to the other host at once: deduplicated across hosts.
        assert second.deliver(key) == {"status": "duplicate", "run_id": got["run_id"]}
        run_ids[key] = got["run_id"]

    finals = {key: a.wait_run(rid, is_final, timeout=40, what="final status") for key, rid in run_ids.items()}
    assert {k: r["status"] for k, r in finals.items()} == dict.fromkeys(keys, "succeeded")
    for key in keys:
        assert [r["run_id"] for r in b.runs(key)] == [run_ids[key]]  # one run per ticket

    executors = workflow_executors(pg_database)
    by_host = Counter(executors[rid][1] for rid in run_ids.values())
    assert set(by_host) == {"host-a", "host-b"}, by_host  # both hosts did work
    assert all(executors[rid][0] == "SUCCESS" for rid in run_ids.values())
    # One PR per ticket across both hosts, each recorded by the host that ran the ticket.
    assert _pr_heads(a.workspace, b.workspace) == Counter(f"ticket/{k.lower()}" for k in keys)
    for key, rid in run_ids.items():
        host = a if executors[rid][1] == "host-a" else b
        assert f"ticket/{key.lower()}" in _pr_heads(host.workspace)


def test_dead_host_runs_finish_elsewhere_after_recover(
    tmp_path: Path, procs: Procs, service_env: EnvBuilder, pg_database: str
) -> None:
    # 9 tickets, 4 slots per host: each host takes 4 and one waits in the queue. (The slot count is
    # the same on both: DBOS keeps a queue's worker_concurrency in the database, so the host that
    # registered the queue last sets it for all.)
    a, b = _hosts(tmp_path, procs, service_env, pg_database, delay_s=DEAD_DELAY_S, slots=(4, 4))
    keys = [f"PROJ-{n}" for n in range(11, 20)]
    run_ids = {key: (a if i % 2 else b).deliver(key)["run_id"] for i, key in enumerate(keys)}

    def a_busy_and_one_waiting() -> bool:
        ex = workflow_executors(pg_database)
        if any(rid not in ex for rid in run_ids.values()):
            return False  # not all handed off yet (each is decided first: the dispatcher's own pace)
        on_a = [rid for rid in run_ids.values() if ex[rid] == ("PENDING", "host-a")]
        waiting = [rid for rid in run_ids.values() if ex[rid][0] == "ENQUEUED"]
        return (len(on_a) == 4 and len(waiting) == 1
                and all(step_status(b.run(rid), "implement") == "running" for rid in on_a))

    _wait(a_busy_and_one_waiting, 20, "host-a's 4 runs in implement, one ticket waiting", a, b)
    executors = workflow_executors(pg_database)
    dead = {k: rid for k, rid in run_ids.items() if executors[rid][1] == "host-a"}
    queued = [k for k, rid in run_ids.items() if executors[rid][0] == "ENQUEUED"]
    assert len(dead) == 4 and len(queued) == 1, executors
    a.kill9()  # never restarted

    # The dead host's tickets stay deduplicated until an operator acts.
    some_dead = next(iter(dead))
    assert b.deliver(some_dead) == {"status": "duplicate", "run_id": dead[some_dead]}
    # Recovery runs while the live host is busy: pause it so that, during `recover`, the queue holds
    # work that only the one-off recover process could take (it must not: it exits right after).
    b.pause()
    try:
        assert {workflow_executors(pg_database)[rid] for rid in dead.values()} == {("PENDING", "host-a")}
        # The one-off process gets the hosts' settings (deployment-plan §10: the same env file) with
        # Jira reporting on: at start-up it asks Jira who it is, and here Jira answers slowly (one
        # 503 + Retry-After: 1). That second is time in which a queue worker in `recover` would take
        # queued runs that it then abandons when it exits.
        with FakeJira(issues=dict.fromkeys(keys, "To Do")) as jira:
            jira.inject(503, headers={"Retry-After": "1"}, path_contains="/myself")
            rec_env = service_env(
                tmp_path / "recover" / "ws", {"delay_s": DEAD_DELAY_S}, EXECUTOR_ID="recover-1",
                APP_VERSION="1", DATABASE_URL=pg_database, MAX_CONCURRENT_RUNS="4",
                JIRA_BASE_URL=jira.base_url, JIRA_EMAIL=jira.email, JIRA_API_TOKEN=jira.token)
            moved = recover_cli(tmp_path / "recover", rec_env, "host-a")
            paths = [r.path for r in jira.requests]
            assert paths[:2] == ["/rest/api/3/myself"] * 2  # it did wait for Jira
            # Then it decided the moved runs before handing them off (each read from Jira, where
            # the ticket routes) and said on each dead run's ticket that it stopped: only the dead
            # host's tickets are touched, and only their comments are written.
            issues = {p.split("/")[5] for p in paths if p.startswith("/rest/api/3/issue/")}
            assert issues == set(dead), paths
            writes = [(r.method, r.path) for r in jira.requests if r.method != "GET"]
            assert {path for _, path in writes} == {f"/rest/api/3/issue/{k}/comment" for k in dead}, writes
            for key in dead:
                (comment,) = jira.comment_texts(key)
                assert "the run was cancelled" in comment and "executor host-a died; continued as" in comment
        after_recover = workflow_executors(pg_database)
    finally:
        b.resume()
    assert sorted(m["from"] for m in moved) == sorted(dead.values())
    assert all(m["status"] == "queued" for m in moved), moved
    new_ids = {m["from"]: m["to"] for m in moved}
    # The recover process started nothing itself (it exits at once: whatever it dequeued would be
    # stranded on its executor id): the new runs and the waiting ticket are still in the queue.
    waiting = [*new_ids.values(), run_ids[queued[0]]]
    assert {after_recover[rid][0] for rid in waiting} == {"ENQUEUED"}, after_recover
    assert not [w for w, (st, ex) in after_recover.items() if ex == "recover-1" and st != "ENQUEUED"]

    # Dedup intact during the new runs: a delivery for a recovered ticket names its new run.
    assert b.deliver(some_dead) == {"status": "duplicate", "run_id": new_ids[dead[some_dead]]}
    final_ids = [rid for k, rid in run_ids.items() if k not in dead] + list(new_ids.values())
    for rid in final_ids:
        run = b.wait_run(rid, is_final, timeout=30, what="final status")
        assert run["status"] == "succeeded", run["error"]
    for key, old in dead.items():
        old_run = b.run(old)
        assert old_run["status"] == "cancelled" and new_ids[old] in old_run["error"]
        assert sorted(r["status"] for r in b.runs(key)) == ["cancelled", "succeeded"]

    executors = workflow_executors(pg_database)
    assert {executors[rid] for rid in final_ids} == {("SUCCESS", "host-b")}, executors
    assert {executors[rid][0] for rid in dead.values()} == {"CANCELLED"}
    heads = _pr_heads(a.workspace, b.workspace, tmp_path / "recover" / "ws")
    assert heads == Counter(f"ticket/{k.lower()}" for k in keys)
