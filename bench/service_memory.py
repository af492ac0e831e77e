"""The service's own memory with 8 tickets at once (numbers, no asserts).

Runs `python -m app.cli serve` as its own process (real Claude Code CLI in the bubblewrap sandbox,
the scripted Messages API of the tests answering each turn after `--model-delay` seconds so all 8
sessions are alive together, lint + test on, MAX_CONCURRENT_RUNS=8, SQLite), sends 8 tickets at
once and samples `/proc/<pid>/status` of the service process ONLY (VmRSS; VmHWM is the kernel's
peak): the CLI processes, bwrap and the checks are other processes and are not counted.

Anchors in the same run: a bare interpreter, and the service idle after start-up (what its imports
and DBOS cost before any ticket), so the per-ticket share shows.

    uv run python bench/service_memory.py [--tickets 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import settings_env  # noqa: E402
from tests.durability.service_proc import base_env, free_port  # noqa: E402
from tests.fakes.anthropic_api import FakeAnthropicAPI, Rule, text, write  # noqa: E402
from tests.fakes.github_api import FakeGitHub  # noqa: E402
from tests.fakes.otlp_capture import OtlpCapture  # noqa: E402
from tests.gitrepos import make_remote  # noqa: E402
from tests.scratch import SCRATCH  # noqa: E402

GOAL_MB = 250.0
IMPLEMENT = "You are implementing Jira ticket"
GH_TOKEN = "ghp_MEMBENCH_token_0123456789abcd"  # noqa: S105 - the fake GitHub's, for this bench


def status_mb(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = float(value.split()[0]) / (1024 if key != "Threads" else 1)
    return out


def fresh_pg_database(url: str) -> str:
    """A new, empty database next to the one `url` names (DBOS and the run tables start clean)."""
    import sqlalchemy as sa

    name = f"bench_memory_{os.getpid()}_{int(time.time() * 1000) % 10_000_000}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


def live_clis(root: Path) -> int:
    """Claude Code CLI processes whose cwd lies under `root` (this round's worktrees)."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            exe = os.readlink(f"/proc/{entry.name}/exe")
            if exe.endswith("/claude") and os.readlink(f"/proc/{entry.name}/cwd").startswith(str(root)):
                count += 1
    return count


def bare_python_mb() -> float:
    res = subprocess.run([sys.executable, "-c", "print(open('/proc/self/status').read())"],
                         capture_output=True, text=True, check=True, timeout=30)
    line = next(x for x in res.stdout.splitlines() if x.startswith("VmRSS"))
    return float(line.split()[1]) / 1024


def one_round(base: Path, tickets: int, delay: float, extra_env: dict[str, str], langfuse: bool,
              database_url: str | None) -> dict[str, float]:
    demo = make_remote(base / "demo")
    with contextlib.ExitStack() as stack:
        model = stack.enter_context(FakeAnthropicAPI())
        github = stack.enter_context(FakeGitHub(owner="acme", repo="greeter", token=GH_TOKEN))
        model.script(Rule(prompt_contains=IMPLEMENT, turns=[
            write("{cwd}/docs/hello.md", "# Hello\n", delay_s=delay),
            text("Added docs/hello.md.", delay_s=delay)]))
        home = base / "home"
        home.mkdir(exist_ok=True)
        settings: dict[str, str] = {
            **demo.env(), "CLAUDE_CLIENT": "sdk", "ANTHROPIC_API_KEY": "sk-ant-membench",
            "ANTHROPIC_BASE_URL": model.url, "GITHUB_CLIENT": "api", "GH_TOKEN": GH_TOKEN,
            "GITHUB_API_URL": github.base_url, "GITHUB_REPOSITORY": github.slug, "ENABLE_LINT": "1",
            "ENABLE_TESTS": "1", "MAX_CONCURRENT_RUNS": str(tickets), "RATE_LIMIT": "100000/minute",
            "CLAUDE_TIMEOUT_SEC": "120", "LOG_LEVEL": "WARNING"}
        if langfuse:  # tracing on, exported to a local OTLP collector standing in for Langfuse
            otlp = stack.enter_context(OtlpCapture().start())
            settings.update(LANGFUSE_BASE_URL=otlp.base_url, LANGFUSE_PUBLIC_KEY="pk-lf-bench",
                            LANGFUSE_SECRET_KEY="sk-lf-bench")  # noqa: S106 - a local collector
        if database_url:
            settings["DATABASE_URL"] = database_url
        env = base_env(**settings_env(base / "ws", **settings))
        env.update(HOME=str(home), CLAUDE_CODE_MAX_RETRIES="1", **extra_env)
        port = free_port()
        log = (base / "service.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port",
                                 str(port)], cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise SystemExit("service did not start; see " + str(base / "service.log"))
            time.sleep(1.0)
            idle = status_mb(proc.pid)["VmRSS"]
            samples: list[float] = []
            clis: list[int] = [0]
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    samples.append(status_mb(proc.pid)["VmRSS"])
                    clis.append(live_clis(base))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            ids = []
            with httpx.Client(base_url=url, timeout=30) as client:
                for i in range(tickets):
                    resp = client.post("/webhook/jira", json={"key": f"MEM-{i + 1}", "summary": "Add a file"})
                    ids.append(resp.json()["run_id"])
                deadline = time.monotonic() + 300
                states: list[str] = []
                while time.monotonic() < deadline:
                    states = [client.get(f"/runs/{r}").json()["status"] for r in ids]
                    if all(s in ("succeeded", "failed", "no_changes", "cancelled") for s in states):
                        break
                    time.sleep(0.5)
            stop.set()
            sampler.join()
            final = status_mb(proc.pid)
            return {"idle": idle, "peak_sampled": max(samples), "hwm": final["VmHWM"],
                    "after": final["VmRSS"], "threads": final["Threads"],
                    "succeeded": float(states.count("succeeded")), "elapsed": time.monotonic() - started,
                    "clis": float(max(clis))}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
            log.close()


def main(tickets: int, rounds: int, delay: float, env_pairs: list[str], langfuse: bool,
         database_url: str | None) -> None:
    extra = dict(pair.split("=", 1) for pair in env_pairs)
    print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f} (shared machine); "
          f"{tickets} tickets at once, {rounds} rounds, langfuse {'on' if langfuse else 'off'}, "
          f"{'PostgreSQL' if database_url else 'SQLite'}{', env ' + str(extra) if extra else ''}")
    results = []
    for _ in range(rounds):
        base = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=SCRATCH))
        try:
            if database_url and "postgresql" in database_url:
                database_url = fresh_pg_database(database_url)
            results.append(one_round(base, tickets, delay, extra, langfuse, database_url))
        finally:
            shutil.rmtree(base, ignore_errors=True)
    bare = bare_python_mb()

    def med(key: str) -> float:
        return statistics.median(r[key] for r in results)

    print(f"{'bare interpreter (anchor)':44} {bare:7.1f} MB")
    print(f"{'service idle after start-up (anchor)':44} {med('idle'):7.1f} MB")
    print(f"{'service peak, ' + str(tickets) + ' tickets at once (VmHWM)':44} {med('hwm'):7.1f} MB  "
          f"(sampled peak {med('peak_sampled'):.1f}; per ticket +{(med('hwm') - med('idle')) / tickets:.1f})")
    print(f"{'service after the tickets':44} {med('after'):7.1f} MB  ({med('threads'):.0f} threads)")
    print(f"tickets succeeded per round: {[int(r['succeeded']) for r in results]}; "
          f"wall {med('elapsed'):.1f} s for all {tickets}; at most {med('clis'):.0f} CLIs alive at once")
    peak = med("hwm")
    verdict = "goal met" if peak <= GOAL_MB else f"goal missed by {peak - GOAL_MB:.0f} MB"
    print(f"goal ≤ {GOAL_MB:.0f} MB peak: {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-delay", type=float, default=1.5)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the service (experiments)")
    parser.add_argument("--langfuse", action="store_true", help="tracing on (a local OTLP collector)")
    parser.add_argument("--database-url", help="e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ns = parser.parse_args()
    main(ns.tickets, ns.rounds, ns.model_delay, ns.env, ns.langfuse, ns.database_url)
