"""Non-model time per ticket, beside the same steps run by hand (numbers, no asserts).

The model answers instantly (the scripted Messages API the tests use, tests/fakes/anthropic_api.py:
one Write, then "done"), the CLI is the real bundled Claude Code CLI, git works against a local
bare remote, pull requests go to the fake GitHub REST API, lint and test gates are on.

- service: `create_app` as the e2e tests run it (real CLI in the bubblewrap sandbox, model proxy,
  SQLite/DBOS), tickets one after another; for each, the time from its first step's start to its
  last step's end (queue pickup is the intake's concern, shown apart), split per step;
- by hand (the anchor): the same steps as plain commands, run here in order: `git fetch` +
  `git worktree add`, the same CLI with `-p` (no sandbox, no SDK), `python3 scripts/lint.py`,
  `python3 scripts/test.py`, `git add` + `git commit` + `git push`, one POST for the PR.
Runs alternate (hand, service, hand, ...) so load on the shared machine hits both alike.

    uv run python bench/pipeline_overhead.py [--n 7]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from app.main import create_app  # noqa: E402
from app.models import FINAL_STATUSES  # noqa: E402
from app.services.claude_code.launcher import bundled_cli  # noqa: E402
from tests.fakes.anthropic_api import FakeAnthropicAPI, Rule, text, write  # noqa: E402
from tests.fakes.github_api import FakeGitHub  # noqa: E402
from tests.gitrepos import make_remote, workspace_settings  # noqa: E402
from tests.scratch import SCRATCH  # noqa: E402

GOAL = 1.5
IMPLEMENT = "You are implementing Jira ticket"
API_KEY = "sk-ant-bench-dummy-key"
GH_TOKEN = "ghp_BENCH_token_0123456789abcdef"  # noqa: S105 - the fake GitHub's, for this bench


def _t(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "hand", "GIT_AUTHOR_EMAIL": "hand@example.invalid",
           "GIT_COMMITTER_NAME": "hand", "GIT_COMMITTER_EMAIL": "hand@example.invalid",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=120)


def by_hand(base: Path, remote: Path, n: int, model_url: str, github: FakeGitHub) -> dict[str, float]:
    """The pipeline's steps as one person would type them; seconds per step."""
    clone = base / "hand-clone"
    if not clone.exists():
        _git(base, "clone", "--quiet", "--no-checkout", str(remote), str(clone))
    wt = base / f"hand-wt-{n}"
    times: dict[str, float] = {}

    def timed(name: str, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True, timeout=120)
        times[name] = times.get(name, 0.0) + time.perf_counter() - started

    started = time.perf_counter()
    _git(clone, "fetch", "--quiet", "origin")
    _git(clone, "worktree", "add", "--quiet", "-B", f"hand/{n}", str(wt), "origin/main")
    times["prepare"] = time.perf_counter() - started
    home = base / f"hand-home-{n}"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": model_url,
           "ANTHROPIC_API_KEY": API_KEY, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "CLAUDE_CONFIG_DIR": str(home / ".claude")}
    cli_started = time.time()
    timed("implement", [bundled_cli(), "-p", f"{IMPLEMENT} HAND-{n}: add a greeting file",
                        "--output-format", "json", "--max-turns", "10", "--permission-mode", "acceptEdits"],
          wt, env)
    cli_ended = time.time()
    first_req, last_req = model_window(f"HAND-{n}")
    times["implement: start → 1st model request"] = first_req - cli_started
    times["implement: last model request → end"] = cli_ended - last_req
    timed("lint", ["python3", "scripts/lint.py"], wt)
    timed("test", ["python3", "scripts/test.py"], wt)
    started = time.perf_counter()
    _git(wt, "add", "-A")
    _git(wt, "commit", "--quiet", "-m", f"HAND-{n}")
    times["commit"] = time.perf_counter() - started
    started = time.perf_counter()
    _git(wt, "push", "--quiet", str(remote), f"HEAD:refs/heads/hand/{n}")
    times["push"] = time.perf_counter() - started
    started = time.perf_counter()
    httpx.post(f"{github.base_url}/repos/{github.slug}/pulls", json={
        "title": f"HAND-{n}", "head": f"hand/{n}", "base": "main", "body": "by hand"},
        headers={"Authorization": f"Bearer {GH_TOKEN}"}, timeout=30)
    times["pull_request"] = time.perf_counter() - started
    _git(clone, "worktree", "remove", "--force", str(wt))
    return times


def service_run(client: TestClient, key: str) -> dict[str, Any]:
    resp = client.post("/webhook/jira", json={"key": key, "summary": "Add a greeting file"})
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["run_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run: dict[str, Any] = client.get(f"/runs/{run_id}").json()
        if run.get("status") in FINAL_STATUSES:
            if run["status"] != "succeeded":
                raise SystemExit(f"{key} ended {run['status']}: {run.get('error')}")
            return run
        time.sleep(0.1)  # the poll itself costs the service CPU: not too often
    raise SystemExit(f"{key} did not finish")


SEEN: list[tuple[float, str]] = []  # (arrival time, prompt text) of every model request


def record_arrivals(model: FakeAnthropicAPI) -> None:
    """Note when each request reaches the model (the fake answers at once, so this is the CLI's
    side of the time: start-up before the first request, the tool call between two)."""
    choose = model._choose

    def noting(req: Any) -> Any:
        SEEN.append((time.time(), req.prompt_text()))
        return choose(req)

    model._choose = noting  # type: ignore[method-assign]


def model_window(key: str) -> tuple[float, float]:
    times = [t for t, prompt in SEEN if f" {key}" in prompt]
    return (min(times), max(times)) if times else (0.0, 0.0)


def split(run: dict[str, Any]) -> dict[str, float]:
    steps = [s for s in run["steps"] if s["started_at"] and s["finished_at"]]
    first = min(_t(s["started_at"]) for s in steps)
    last = max(_t(s["finished_at"]) for s in steps)
    out: dict[str, float] = defaultdict(float)
    for s in steps:
        out[s["name"]] += _t(s["finished_at"]) - _t(s["started_at"])
        if s["name"] == "implement":
            first_req, last_req = model_window(run["ticket"])
            out["implement: start → 1st model request"] = first_req - _t(s["started_at"])
            out["implement: last model request → end"] = _t(s["finished_at"]) - last_req
    out["(between steps)"] = (last - first) - sum(v for k, v in out.items() if ":" not in k)
    out["= pipeline"] = last - first
    out["(queue pickup, not counted)"] = first - _t(run["created_at"])
    return dict(out)


def main(n: int, dump: str | None, sandbox: str) -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-pipeline-", dir=SCRATCH))
    saved = dict(os.environ)
    try:
        demo = make_remote(base / "demo")
        with FakeAnthropicAPI() as model, FakeGitHub(owner="acme", repo="greeter", token=GH_TOKEN) as github:
            record_arrivals(model)
            model.script(Rule(prompt_contains=IMPLEMENT, turns=[
                write("{cwd}/docs/hello.md", "# Hello\n"), text("Added docs/hello.md.")]))
            home = base / "home"
            home.mkdir()
            os.environ.update({"HOME": str(home), "ANTHROPIC_BASE_URL": model.url,
                               "CLAUDE_CODE_MAX_RETRIES": "1",
                               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"})
            settings = workspace_settings(base, demo, CLAUDE_CLIENT="sdk", ANTHROPIC_API_KEY=API_KEY,
                                          CLAUDE_TIMEOUT_SEC="60", GITHUB_CLIENT="api", GH_TOKEN=GH_TOKEN,
                                          GITHUB_API_URL=github.base_url, GITHUB_REPOSITORY=github.slug,
                                          ENABLE_LINT="1", ENABLE_TESTS="1", RATE_LIMIT="100000/minute",
                                          SANDBOX=sandbox)
            print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f} at start (shared machine); "
                  f"sandbox={settings.sandbox}, {n} tickets each way")
            hand: list[dict[str, float]] = []
            service: list[dict[str, float]] = []
            with TestClient(create_app(settings)) as client:
                service_run(client, "WARM-1")  # first run pays the imports and the first clone: not counted
                by_hand(base, demo.remote, 0, model.url, github)
                for i in range(n):
                    hand.append(by_hand(base, demo.remote, i + 1, model.url, github))
                    run = service_run(client, f"BENCH-{i + 1}")
                    service.append(split(run))
                    if dump:
                        Path(dump).write_text(json.dumps(run, indent=1))
        print(f"\nby hand (the anchor), median s per step (load {os.getloadavg()[0]:.2f} at the end):")
        hand_total = statistics.median([sum(v for k, v in h.items() if ":" not in k) for h in hand])
        for key in hand[0]:
            print(f"  {key:30} {statistics.median([h[key] for h in hand]):7.3f}")
        print(f"  {'= total':30} {hand_total:7.3f}")
        print("service, median s per step:")
        keys = sorted({k for s in service for k in s}, key=lambda k: (k.startswith(("=", "(")), k))
        for key in keys:
            print(f"  {key:30} {statistics.median([s.get(key, 0.0) for s in service]):7.3f}")
        total = statistics.median([s["= pipeline"] for s in service])
        ratio = total / hand_total
        verdict = "goal met" if ratio <= GOAL else f"goal missed by {ratio - GOAL:.2f}×"
        print(f"\nnon-model time per ticket: service {total:.3f} s vs by hand {hand_total:.3f} s = "
              f"{ratio:.2f}× (goal ≤ {GOAL}×: {verdict}); the model answers at once: all of it is overhead")
        print(json.dumps({"service_s": round(total, 3), "hand_s": round(hand_total, 3),
                          "ratio": round(ratio, 2)}))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=7)
    parser.add_argument("--dump", help="write the last service run's record (JSON) here")
    parser.add_argument("--sandbox", default="bwrap", choices=["bwrap", "none"],
                        help="none: the service without its sandbox (to see the sandbox's share)")
    ns = parser.parse_args()
    main(ns.n, ns.dump, ns.sandbox)
