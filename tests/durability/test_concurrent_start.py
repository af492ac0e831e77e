"""Several hosts starting at the same instant on one fresh PostgreSQL database all come up.

Each host is a separate process (DBOS is a process-wide singleton) that builds the real app, waits
at a barrier with the others, and then runs the real lifespan: run-table migrations and DBOS's
launch (which migrates DBOS's own tables) under the schema lock, queue registration, reconciler.
Before the lock, two hosts started together crashed one of them most of the time with
`UniqueViolation: pg_type_typname_nsp_index ... (ac_runs, 2200)`.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.services.runner.migrate import current_revision, head_revision
from app.services.runner.store import make_engine
from tests.conftest import PG_ADMIN_URL, _pg_available

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

HOSTS = 5
ROUNDS = 3  # each round: a new fresh database, every host starting on it at once


def _host(name: str, env: dict[str, str], db_urls: list[str], barrier: Any, results: Any) -> None:
    """One host process: imports first (seconds), then per round: the barrier, the whole start-up
    and shutdown of the service on that round's database."""
    os.environ.update(env)
    os.chdir(env["WORKSPACE_DIR"])  # no .env of the checkout is read
    from app.config import Settings
    from app.main import create_app, lifespan

    for round_no, url in enumerate(db_urls):
        try:
            os.environ["DATABASE_URL"] = url
            app = create_app(Settings())

            async def start() -> None:
                barrier.wait(timeout=120)
                async with lifespan(app):  # noqa: B023 - awaited within this iteration
                    pass

            asyncio.run(start())
            results.put((round_no, name, "ok"))
        except BaseException:
            results.put((round_no, name, traceback.format_exc()))


@pytest.fixture
def fresh_databases() -> Iterator[list[str]]:
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    names = [f"autocode_start_{uuid.uuid4().hex[:10]}" for _ in range(ROUNDS)]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield [PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}" for name in names]
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_hosts_starting_at_once_on_a_fresh_database_all_come_up(
    fresh_databases: list[str], tmp_path: Path
) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(HOSTS)
    results = ctx.Queue()
    procs = []
    for i in range(HOSTS):
        ws = tmp_path / f"host-{i}"
        ws.mkdir(parents=True)
        env = {"NODE_ENV": "development", "WORKSPACE_DIR": str(ws), "EXECUTOR_ID": f"host-{i}",
               "APP_VERSION": "1", "CLAUDE_CLIENT": "mock", "GITHUB_CLIENT": "local", "REPO_DIR": str(ws),
               "SCRUB_ENV": "0", "LOG_LEVEL": "WARNING", "SANDBOX": "none", "RECONCILE_INTERVAL_SEC": "0"}
        proc = ctx.Process(target=_host, args=(f"host-{i}", env, fresh_databases, barrier, results),
                           daemon=True)
        proc.start()
        procs.append(proc)
    try:
        outcomes = [results.get(timeout=300) for _ in range(HOSTS * ROUNDS)]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    failed = [f"round {r} {name}:\n{out}" for r, name, out in sorted(outcomes) if out != "ok"]
    assert not failed, f"{len(failed)} of {HOSTS * ROUNDS} starts failed:\n\n" + "\n\n".join(failed)
    for url in fresh_databases:
        engine = make_engine(url)
        try:
            assert current_revision(engine) == head_revision()
        finally:
            engine.dispose()
