"""Webhook latency: p50/p95/p99 of valid deliveries against the real service (numbers, no asserts).

Starts `uvicorn app.main:create_app --factory` as a subprocess on 127.0.0.1 with a temp WORKSPACE_DIR
(embedded SQLite DBOS, mock Claude, local PR records, a throwaway local git repository as REPO_URL so
runs really execute in the background while we measure), then sends from one httpx client:
  1. warm-up deliveries (not counted),
  2. N deliveries with distinct keys  → 202 queued (one durable enqueue + run record each),
  3. N deliveries of keys still queued → 202 duplicate (dedup lookup, no new run),
  4. N distinct keys, 8 at a time concurrently.
Each request is authenticated with X-Webhook-Token, as Jira Automation would send it.

    uv run python bench/webhook_latency.py [--n 300] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789abcdef"  # noqa: S105 - a throwaway local secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, timeout=30, capture_output=True)


def make_repo(root: Path) -> Path:
    """A bare repository with one commit on main, used as REPO_URL (a local path)."""
    work = root / "seed"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "README.md").write_text("# bench target\n")
    git(work, "add", "README.md")
    git(work, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-q", "-m", "init")
    bare = root / "origin.git"
    git(root, "clone", "-q", "--bare", str(work), str(bare))
    return bare


def start_service(
    workspace: Path, repo: Path, port: int, log_path: Path, database_url: str | None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NODE_ENV": "development",
        "WORKSPACE_DIR": str(workspace),
        "REPO_URL": str(repo),
        "CLAUDE_CLIENT": "mock",
        "GITHUB_CLIENT": "local",
        "WEBHOOK_SECRET": TOKEN,
        "RATE_LIMIT": "1000000/minute",
        "MAX_CONCURRENT_RUNS": "2",
        "LOG_LEVEL": "WARNING",
        "EXECUTOR_ID": "bench",
        "CLAUDE_CODE_API_PORT": str(port),
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    cmd = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]
    log = log_path.open("wb")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"service exited with {proc.returncode} before becoming healthy")
        try:
            if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("service did not become healthy in time")


def deliver(client: httpx.Client, key: str) -> tuple[float, str]:
    body = {"key": key, "summary": f"bench {key}", "description": "Make the README mention the bench."}
    t0 = time.perf_counter()
    r = client.post("/webhook/jira", json=body, headers={"X-Webhook-Token": TOKEN})
    elapsed = (time.perf_counter() - t0) * 1000
    status = r.json().get("status", r.status_code) if r.status_code == 202 else str(r.status_code)
    return elapsed, str(status)


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def report(name: str, results: list[tuple[float, str]]) -> None:
    ms = [r[0] for r in results]
    statuses: dict[str, int] = {}
    for _, s in results:
        statuses[s] = statuses.get(s, 0) + 1
    print(f"{name:<24} n={len(ms):<4} p50={pct(ms, 50):6.2f} ms  p95={pct(ms, 95):6.2f} ms  "
          f"p99={pct(ms, 99):6.2f} ms  max={max(ms):6.2f} ms  mean={statistics.fmean(ms):6.2f} ms")
    print(f"{'':<24} answers: {statuses}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=300, help="deliveries per phase")
    parser.add_argument("--database-url", default=None,
                        help="an empty PostgreSQL database to use instead of the embedded SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="auto-code-bench-") as tmp:
        root = Path(tmp)
        repo = make_repo(root)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_service(root / "workspace", repo, port, root / "service.log", args.database_url)
        try:
            t0 = time.monotonic()
            wait_healthy(base, proc)
            print(f"service healthy after {time.monotonic() - t0:.2f} s (pid {proc.pid}, port {port})")
            with httpx.Client(base_url=base, timeout=10.0) as client:
                for i in range(20):
                    deliver(client, f"WARM-{i + 1}")
                distinct = [deliver(client, f"BENCH-{i + 1}") for i in range(args.n)]
                # Deliveries 1-2 may have started (2 workers) and even finished; the rest are queued.
                dup_keys = [f"BENCH-{args.n - (i % 50)}" for i in range(args.n)]
                duplicates = [deliver(client, k) for k in dup_keys]
            with httpx.Client(base_url=base, timeout=10.0, limits=httpx.Limits(max_connections=8)) as client:
                with concurrent.futures.ThreadPoolExecutor(8) as pool:
                    keys = [f"CONC-{i + 1}" for i in range(args.n)]
                    concurrent_results = list(pool.map(lambda k: deliver(client, k), keys))
            report("distinct keys (queued)", distinct)
            report("duplicates", duplicates)
            report("distinct, 8 concurrent", concurrent_results)
        finally:
            stop_service(proc)


if __name__ == "__main__":
    main()
