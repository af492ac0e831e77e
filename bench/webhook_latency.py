"""Intake speed against its floors, in one run (issue 10): numbers and ratios, no asserts.

Every figure is measured beside its anchor, written here, on the same machine in the same run:
  anchors   a bare FastAPI endpoint answering 202; an endpoint doing one fsync'd SQLite INSERT
            (WAL, synchronous=FULL) per request; one doing one PostgreSQL INSERT (autocommit) per
            request. Each served by uvicorn in its own process, like the service.
  service   `uvicorn app.main:create_app --factory` (mock Claude, local PR records, a throwaway git
            repository), token-authenticated deliveries of distinct tickets, as a Jira bulk change
            sends them. In the intake phases the service accepts and hands off to the DBOS queue
            but starts no run (QUEUE_WORKER=false); `--runs` lets it run them meanwhile.
Phases, each against a fresh service / anchor:
  closed loop   16 connections, each sending its next request when the answer came (req/s, p50/p99);
                on SQLite and on PostgreSQL.
  open loop     500 req/s on a fixed schedule, latency measured from the *scheduled* send time (so a
                server that falls behind shows it), p99; on SQLite and PostgreSQL.
  queue wait    accepted (the record's created_at) -> the run's `start` step and its first step row
                (`prepare`), one ticket at a time with a slot free, median.
  lost          every 202 `queued` must be a run record and a DBOS workflow once the handoff settles.
  CPU           the server process's CPU time (user + system, all its threads, from /proc) over a
                closed-loop phase - for the service until the handoff has settled, so the DBOS
                enqueue of what it accepted counts too - per request (ms); the anchors' beside it.
Then a table of each figure, its anchor, the ratio and the goal (issue 10's table).

The client is a small HTTP/1.1 keep-alive client on asyncio streams (an httpx client tops out
below the anchors on this machine). It shares the machine with the server: on 2 cores, client and
server compete, as they did for the issue's figures.

    uv run python bench/webhook_latency.py [--n 3000] [--rate 500] [--seconds 6]
        [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres] [--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a throwaway local secret
PG_ADMIN = os.environ.get("AUTO_CODE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

ANCHOR_APP = '''
import asyncio, os, sqlite3, threading, time, uuid
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()
DB = os.environ.get("ANCHOR_SQLITE")
PG = os.environ.get("ANCHOR_PG")
_local = threading.local()

def _sqlite():
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(DB, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL"); conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=30000")
        _local.conn = conn
    return conn

def _pg():
    conn = getattr(_local, "pg", None)
    if conn is None:
        import psycopg
        conn = psycopg.connect(PG, autocommit=True)
        _local.pg = conn
    return conn

def _insert_sqlite(body: bytes) -> None:
    _sqlite().execute("INSERT INTO t (id, ts, body) VALUES (?, ?, ?)", (uuid.uuid4().hex, time.time(), body))

def _insert_pg(body: bytes) -> None:
    _pg().execute("INSERT INTO t (id, ts, body) VALUES (%s, %s, %s)", (uuid.uuid4().hex, time.time(), body))

@app.post("/bare", status_code=202)
async def bare(request: Request):
    await request.body()
    return JSONResponse({"status": "queued"}, status_code=202)

@app.post("/sqlite", status_code=202)
async def insert_sqlite(request: Request):
    body = await request.body()
    await asyncio.to_thread(_insert_sqlite, body)
    return JSONResponse({"status": "queued"}, status_code=202)

@app.post("/pg", status_code=202)
async def insert_pg(request: Request):
    body = await request.body()
    await asyncio.to_thread(_insert_pg, body)
    return JSONResponse({"status": "queued"}, status_code=202)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, timeout=30, capture_output=True)


def make_repo(root: Path) -> Path:
    work = root / "seed"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "README.md").write_text("# bench target\n")
    git(work, "add", "README.md")
    git(work, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "init")
    bare = root / "origin.git"
    git(root, "clone", "-q", "--bare", str(work), str(bare))
    return bare


# ----- processes -----
@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def _uvicorn(target: list[str], env: dict[str, str], cwd: Path, log: Path, *, wait_path: str,
             factory: bool = False) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", *target, "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log"]
    if factory:
        cmd.append("--factory")
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(proc, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(f"GET {wait_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 "):
                    return server
        except OSError:
            pass
        time.sleep(0.1)
    server.stop()
    raise SystemExit("server did not come up")


def start_anchor(root: Path, pg_url: str | None) -> Server:
    (root / "anchor_app.py").write_text(ANCHOR_APP)
    db = root / "anchor.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, ts REAL NOT NULL, body BLOB NOT NULL)")
    conn.close()
    env = {**os.environ, "ANCHOR_SQLITE": str(db)}
    if pg_url:
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as pg:
            pg.execute("CREATE TABLE t (id TEXT PRIMARY KEY, ts DOUBLE PRECISION NOT NULL, "
                       "body BYTEA NOT NULL)")
        env["ANCHOR_PG"] = pg_url
    return _uvicorn(["anchor_app:app"], env, root, root / "anchor.log", wait_path="/docs")


def start_service(root: Path, name: str, repo: Path, database_url: str | None,
                  runs: bool = True) -> tuple[Server, str]:
    ws = root / name
    ws.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
        "NODE_ENV": "development", "WORKSPACE_DIR": str(ws), "REPO_URL": str(repo),
        "CLAUDE_CLIENT": "mock", "GITHUB_CLIENT": "local", "WEBHOOK_SECRET": TOKEN,
        "RATE_LIMIT_AUTHENTICATED": "10000000/minute", "MAX_CONCURRENT_RUNS": "2", "LOG_LEVEL": "WARNING",
        "EXECUTOR_ID": f"bench-{name}", "SANDBOX": "none", "PYTHONPATH": str(ROOT),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        # false: this host accepts and hands off but starts no run (the pipeline's git processes are
        # spawned on the same event loop and 2 cores; --runs measures intake beside them)
        "QUEUE_WORKER": "true" if runs else "false",
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    server = _uvicorn(["app.main:create_app"], env, ROOT, root / f"{name}.log", wait_path="/health",
                      factory=True)
    return server, database_url or f"sqlite:///{ws / 'auto-code.sqlite'}"


def pg_database(admin: str) -> tuple[str, Callable[[], None]]:
    import psycopg

    name = f"autocode_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return admin.rsplit("/", 1)[0] + f"/{name}", drop


# ----- the client -----
class Conn:
    """One HTTP/1.1 keep-alive connection: `post(path, body)` -> (status, body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes, headers: str) -> tuple[int, bytes]:
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                          f"{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def delivery(n: int, prefix: str) -> bytes:
    return json.dumps({"key": f"{prefix}-{n}", "summary": f"bench {n}",
                       "description": "Make the README mention the bench."}).encode()


@dataclass
class Result:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    queued: list[str] = field(default_factory=list)
    cpu_s: float | None = None  # the server's CPU time over the phase (closed loop only)

    def record(self, ms: float, status: int, body: bytes) -> None:
        self.latencies_ms.append(ms)
        key = str(status)
        if status == 202:
            answer = json.loads(body)
            key = answer.get("status", "202")
            if key == "queued" and "run_id" in answer:  # (the anchors name no run)
                self.queued.append(answer["run_id"])
        self.statuses[key] = self.statuses.get(key, 0) + 1

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    @property
    def cpu_ms(self) -> float | None:
        """The server's CPU per request (ms)."""
        return None if self.cpu_s is None else self.cpu_s * 1000 / len(self.latencies_ms)

    def line(self) -> str:
        cpu = "" if self.cpu_ms is None else f"  cpu {self.cpu_ms:.2f} ms/req"
        return (f"{self.name:<42} {self.rate:6.0f} req/s  p50 {self.pct(50):7.1f} ms  "
                f"p99 {self.pct(99):7.1f} ms  max {max(self.latencies_ms):7.1f} ms{cpu}  {self.statuses}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid`, all its threads (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


AUTH = f"X-Webhook-Token: {TOKEN}\r\n"


async def closed_loop(name: str, port: int, path: str, n: int, prefix: str, conns: int = 16) -> Result:
    res = Result(name)
    counter = iter(range(1, n + 1))
    pool = [await Conn.open(port) for _ in range(conns)]

    async def worker(c: Conn) -> None:
        for i in counter:
            t0 = time.perf_counter()
            status, body = await c.post(path, delivery(i, prefix), AUTH)
            res.record((time.perf_counter() - t0) * 1000, status, body)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in pool))
    res.seconds = time.perf_counter() - t0
    for c in pool:
        c.close()
    return res


async def open_loop(name: str, port: int, path: str, rate: float, seconds: float, prefix: str) -> Result:
    """Request i is due at start + i/rate; its latency counts from then, whether or not a connection
    was free (a server that falls behind makes the queue, and the figure, grow)."""
    res = Result(name)
    idle: list[Conn] = [await Conn.open(port) for _ in range(32)]
    total = int(rate * seconds)
    tasks = []

    async def one(i: int, due: float) -> None:
        c = idle.pop() if idle else await Conn.open(port)
        status, body = await c.post(path, delivery(i, prefix), AUTH)
        res.record((time.perf_counter() - due) * 1000, status, body)
        idle.append(c)

    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i + 1, due)))
    await asyncio.gather(*tasks)
    res.seconds = time.perf_counter() - start
    for c in idle:
        c.close()
    return res


# ----- what the database says -----
def _rows(url: str, sql: str, **params: object) -> list[dict[str, object]]:
    import sqlalchemy as sa

    from app.services.runner.store_rows import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), params).mappings().all()]
    finally:
        engine.dispose()


def lost(url: str, run_ids: list[str], settle_s: float = 120.0) -> tuple[int, int]:
    """(records missing, workflows missing) among `run_ids` once the handoff has settled."""
    wanted = set(run_ids)
    table = "dbos.workflow_status" if url.startswith("postgres") else "workflow_status"
    deadline = time.monotonic() + settle_s
    while True:
        records = {str(r["run_id"]) for r in _rows(url, "select run_id from ac_runs")}
        flows = {str(r["workflow_uuid"]) for r in _rows(url, f"select workflow_uuid from {table}")}  # noqa: S608
        missing = (len(wanted - records), len(wanted - flows))
        if missing == (0, 0) or time.monotonic() > deadline:
            return missing
        time.sleep(0.5)


async def queue_wait(port: int, url: str, n: int) -> tuple[list[float], list[float]]:
    """Accepted -> `start` step (its log line) and -> first step row, with a slot free (ms)."""
    to_start: list[float] = []
    to_step: list[float] = []
    c = await Conn.open(port)
    for i in range(1, n + 1):
        _, body = await c.post("/webhook/jira", delivery(i, "WAIT"), AUTH)
        run_id = json.loads(body)["run_id"]
        while True:  # wait for it to end, so the next one finds a slot free
            await asyncio.sleep(0.05)
            row = _rows(url, "select status, created_at from ac_runs where run_id = :r", r=run_id)[0]
            if row["status"] not in ("queued", "running"):
                break
        created = float(row["created_at"])  # type: ignore[arg-type]
        started = _rows(url, "select ts from ac_run_logs where run_id = :r and message = 'run_started'",
                        r=run_id)
        step = _rows(url, "select started_at from ac_run_steps where run_id = :r and name = 'prepare'",
                     r=run_id)
        if started:
            to_start.append((float(started[0]["ts"]) - created) * 1000)  # type: ignore[arg-type]
        if step:
            to_step.append((float(step[0]["started_at"]) - created) * 1000)  # type: ignore[arg-type]
    c.close()
    return to_start, to_step


# ----- the run -----
async def bench_backend(root: Path, repo: Path, backend: str, db_url: str | None, args: argparse.Namespace,
                        out: dict[str, object], drops: list[Callable[[], None]]) -> None:
    server, url = start_service(root, f"svc-closed-{backend}", repo, db_url, args.runs)
    try:
        cpu0 = cpu_seconds(server.proc.pid)
        res = await closed_loop(f"service, closed loop 16, {backend}", server.port, "/webhook/jira", args.n,
                                "CL")
        out[f"lost_closed_{backend}"] = lost(url, res.queued)  # the handoff's CPU counts too
        res.cpu_s = cpu_seconds(server.proc.pid) - cpu0
        print(res.line(), flush=True)
        out[f"closed_{backend}"] = res
    finally:
        server.stop()
    fresh_url = None
    if db_url:  # each phase on an empty database
        fresh_url, drop = pg_database(args.pg_admin_url)
        drops.append(drop)
    server, url = start_service(root, f"svc-open-{backend}", repo, fresh_url, args.runs)
    try:
        res = await open_loop(f"service, open loop {args.rate:.0f}/s, {backend}", server.port,
                              "/webhook/jira", args.rate, args.seconds, "OL")
        print(res.line(), flush=True)
        out[f"open_{backend}"] = res
        out[f"lost_open_{backend}"] = lost(url, res.queued)
    finally:
        server.stop()


async def main_async(args: argparse.Namespace) -> None:
    out: dict[str, object] = {}
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="auto-code-bench-", dir=args.tmp) as tmp:
        root = Path(tmp)
        repo = make_repo(root)
        pg_url = None
        drops: list[Callable[[], None]] = []
        if not args.no_pg:
            pg_url, drop = pg_database(args.pg_admin_url)
            drops.append(drop)
        anchor = start_anchor(root, pg_url)
        try:
            anchors: list[tuple[str, str]] = [] if args.skip_anchors else [
                ("/bare", "anchor: bare FastAPI 202"), ("/sqlite", "anchor: fsync'd SQLite insert")]
            if pg_url and not args.skip_anchors:
                anchors.append(("/pg", "anchor: PostgreSQL insert"))
            for path, name in anchors:
                cpu0 = cpu_seconds(anchor.proc.pid)
                res = await closed_loop(f"{name}, closed 16", anchor.port, path, args.n, "AN")
                res.cpu_s = cpu_seconds(anchor.proc.pid) - cpu0
                print(res.line(), flush=True)
                out[f"anchor_closed_{path[1:]}"] = res
                res = await open_loop(f"{name}, open {args.rate:.0f}/s", anchor.port, path, args.rate,
                                      args.seconds, "AN")
                print(res.line(), flush=True)
                out[f"anchor_open_{path[1:]}"] = res
        finally:
            anchor.stop()
        try:
            await bench_backend(root, repo, "sqlite", None, args, out, drops)
            if not args.no_pg:
                svc_pg, drop = pg_database(args.pg_admin_url)
                drops.append(drop)
                await bench_backend(root, repo, "postgresql", svc_pg, args, out, drops)
            server, url = start_service(root, "svc-wait", repo, None)
            try:
                to_start, to_step = await queue_wait(server.port, url, args.waits)
            finally:
                server.stop()
            print(f"queue wait (SQLite, slot free, n={len(to_step)}): accepted -> start step median "
                  f"{statistics.median(to_start):.0f} ms, -> first step row (prepare) median "
                  f"{statistics.median(to_step):.0f} ms, max {max(to_step):.0f} ms")
            out["wait"] = (statistics.median(to_start), statistics.median(to_step))
        finally:
            for d in drops:
                d()
    summary(out, args)


def summary(out: dict[str, object], args: argparse.Namespace) -> None:
    print("\nfigure | measured | anchor (same run) | ratio | goal")
    def get(k: str) -> Result | None:
        v = out.get(k)
        return v if isinstance(v, Result) else None
    for backend, anchor_key in (("sqlite", "sqlite"), ("postgresql", "pg")):
        svc, anc = get(f"closed_{backend}"), get(f"anchor_closed_{anchor_key}")
        if svc and anc:
            ratio = svc.rate / anc.rate
            verdict = "met" if ratio >= 0.5 else "MISSED"
            print(f"closed loop 16, {backend} | {svc.rate:.0f} req/s, p99 {svc.pct(99):.0f} ms | "
                  f"{anc.rate:.0f} req/s, p99 {anc.pct(99):.0f} ms | {ratio:.2f} | >= 0.50 {verdict}")
            if svc.cpu_ms is not None and anc.cpu_ms is not None:
                print(f"service CPU per delivery, closed loop, {backend} | {svc.cpu_ms:.2f} ms | "
                      f"insert endpoint {anc.cpu_ms:.2f} ms/req | {svc.cpu_ms / anc.cpu_ms:.1f}x | -")
        svc = get(f"open_{backend}")
        anc = get(f"anchor_open_{anchor_key}")
        bare = get("anchor_open_bare")
        if svc and anc and bare:
            ok = svc.pct(99) <= 25 and svc.rate >= 0.95 * args.rate
            print(f"open loop {args.rate:.0f}/s, {backend} | {svc.rate:.0f} req/s, "
                  f"p99 {svc.pct(99):.0f} ms | "
                  f"insert p99 {anc.pct(99):.0f} ms, bare p99 {bare.pct(99):.0f} ms | - | p99 <= 25 ms "
                  f"{'met' if ok else 'MISSED'}")
    if "wait" in out:
        start, step = out["wait"]  # type: ignore[misc]
        print(f"queue wait, slot free | start {start:.0f} ms, first step {step:.0f} ms | - | - | <= 100 ms "
              f"{'met' if step <= 100 else 'MISSED'}")
    losses = {k: v for k, v in out.items() if k.startswith("lost_")}
    total = sum(a + b for a, b in losses.values())  # type: ignore[misc]
    print(f"lost deliveries (202 queued without a record / without a workflow): {losses} -> {total} lost")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="requests per closed-loop phase")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop requests per second")
    parser.add_argument("--seconds", type=float, default=6.0, help="open-loop duration")
    parser.add_argument("--waits", type=int, default=20, help="runs for the queue-wait figure")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN, help="where throwaway databases are created")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--runs", action="store_true",
                        help="the service also runs the accepted tickets during the intake phases")
    parser.add_argument("--skip-anchors", action="store_true", help="service phases only")
    parser.add_argument("--tmp", default=None, help="directory for the temporary files")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
