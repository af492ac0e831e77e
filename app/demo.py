"""`auto-code demo`: the service's real pipeline on a throwaway repository, offline, no keys.

It creates a bare "remote" holding a seed project with its own lint and test scripts, starts the
real app (lifespan, DBOS on an SQLite file, queue, runner) against it, delivers a sample ticket to
`POST /webhook/jira`, follows the run through the runs API and prints its timeline, the branch, the
commit and the PR record. Claude is the scripted offline editor (the lint gate fails once and is
fixed in a resumed round) unless ANTHROPIC_API_KEY is set, in which case the real Claude Code runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.composition import Collaborators
from app.config import Settings
from app.demo_followup import CI_FIX, DEMO_WEBHOOK_SECRET, ci_round, local_activity
from app.demo_repo import create_demo_repo
from app.main import create_app, lifespan
from app.models import FINAL_STATUSES
from app.proc import run_command
from app.services.claude_code.scripted import ScriptedClaudeCode

DEMO_TICKET = {
    "key": "DEMO-1",
    "summary": "Add a farewell() function next to greet()",
    "description": "greeter should also say goodbye: farewell('Ada') returns 'Goodbye, Ada!'. Add a test.",
}

# The offline script: the first version has trailing whitespace, the lint gate catches it, and the
# fix round (resuming the same session) removes it.
DEMO_SCRIPT: dict[str, Any] = {
    "tickets": {
        "DEMO-1": {
            "implement": [
                {"write": "greeter/farewell.py", "content": (
                    '"""Farewells."""\n\n\n'
                    "def farewell(name: str) -> str:   \n"
                    '    """Return a friendly goodbye for `name`."""\n'
                    '    return f"Goodbye, {name}!"\n')},
                {"write": "tests/test_farewell.py", "content": (
                    "import unittest\n\nfrom greeter.farewell import farewell\n\n\n"
                    "class FarewellTest(unittest.TestCase):\n"
                    "    def test_farewell(self) -> None:\n"
                    '        self.assertEqual(farewell("Ada"), "Goodbye, Ada!")\n')},
            ],
            "fix:lint": [[{"replace": "greeter/farewell.py", "old": "-> str:   \n", "new": "-> str:\n"}]],
            "fix:ci_fix": CI_FIX,  # after the PR: the demo's CI wants a docs page (demo_followup.py)
            "review": ["HAS_ISSUES: false\nFINDINGS:\nnone"],
            "result": "Added greeter.farewell.farewell() and a unit test for it.",
        }
    }
}


def demo_settings(root: Path, remote_env: dict[str, str]) -> Settings:
    """Settings for the demo: everything explicit, so a developer's own environment (a production
    DATABASE_URL, say) cannot leak in."""
    real = bool(os.environ.get("ANTHROPIC_API_KEY"))
    values: dict[str, Any] = {
        "NODE_ENV": "development", "WORKSPACE_DIR": str(root / "workspace"), "DATABASE_URL": None,
        "CLAUDE_CLIENT": "sdk" if real else "mock", "GITHUB_CLIENT": "local", "DRY_RUN": False,
        "ENABLE_REVIEW": True, "ENABLE_LINT": True, "ENABLE_TESTS": True, "ENABLE_SETUP": False,
        "QUEUE_POLL_INTERVAL_SEC": 0.1, "EXECUTOR_ID": "demo", "SCRUB_ENV": False,
        "WEBHOOK_SECRET": None, "JIRA_WEBHOOK_SECRET": None, "OPERATOR_TOKEN": None,
        "JIRA_BASE_URL": None, "LANGFUSE_PUBLIC_KEY": None, "LANGFUSE_SECRET_KEY": None,
        "LOG_LEVEL": "WARNING",
        # The demo's checks run in the sandbox like production's; a machine without bubblewrap
        # still gets a demo, unconfined and said so (the warning is logged, and printed below).
        "SANDBOX": "bwrap" if shutil.which("bwrap") else "none", **remote_env,
        "GITHUB_WEBHOOK_SECRET": DEMO_WEBHOOK_SECRET,  # the round after the PR arrives as a signed webhook
    }
    return Settings(**values)


async def run_demo(directory: str | None = None, *, as_json: bool = False) -> int:
    """Run the demo; 0 when the run ends `succeeded` with a PR record."""
    root = Path(directory or tempfile.mkdtemp(prefix="auto-code-demo-")).resolve()
    started = time.perf_counter()
    demo = create_demo_repo(root / "target")
    settings = demo_settings(root, demo.env())
    # Without a real Claude the demo's scripted editor is supplied like any collaborator.
    activity = local_activity(settings.workspace_dir, demo.remote)  # GitHub's side of the PR, offline
    collaborators = Collaborators(
        claude=None if settings.uses_real_claude else ScriptedClaudeCode(DEMO_SCRIPT), activity=activity,
    )
    app = create_app(settings, collaborators)
    print(f"demo workspace: {root}")
    print(f"target remote:  {demo.remote} (branch {demo.base_branch})")
    print(f"claude:         {'real Claude Code' if settings.uses_real_claude else 'offline scripted editor'}")
    print("sandbox:        " + ("bubblewrap" if settings.sandbox == "bwrap"
                                 else "NONE - bubblewrap is not installed (apt-get install bubblewrap)"))
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            answer = (await client.post("/webhook/jira", json=DEMO_TICKET)).json()
            print(f"webhook answer: {answer}")
            run = await _wait(client, answer["run_id"])
            _print_run(run, root)
            print(f"commit:         {await _remote_log(demo.remote, run.get('branch'))}")
            pr = _pr_record(settings.workspace_dir / "pull-requests.json", run.get("branch"))
            followup = None
            if run["status"] == "succeeded" and pr and run.get("branch"):
                followup = await ci_round(client, activity, str(run["branch"]), int(pr["number"]), _wait)
    elapsed = time.perf_counter() - started
    if followup is not None:
        print(f"\nfollow-up: kind={followup['kind']} pr=#{followup['pr_number']} "
              f"of run {followup['parent_run_id']}")
        _print_run(followup, root)
        print(f"commit:         {await _remote_log(demo.remote, followup.get('branch'))}")
    if pr:
        print(f"pull request:   #{pr.get('number')} {pr.get('title')}  ({run.get('pr_url')})")
        print("  " + "\n  ".join(str(pr.get("body", "")).splitlines()[:12]))
    model_s = sum(_duration(s) for s in run["steps"] if s["name"] == "implement")
    print(f"demo took {elapsed:.2f}s end to end ({model_s:.2f}s in the implement step)")
    if as_json:
        print(json.dumps(run, indent=2))
    return 0 if run["status"] == "succeeded" and pr and followup and followup["status"] == "succeeded" else 1


async def _wait(client: httpx.AsyncClient, run_id: str, limit_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while True:
        run: dict[str, Any] = (await client.get(f"/runs/{run_id}")).json()  # the API's RunDetail JSON
        if run["status"] in FINAL_STATUSES or time.monotonic() > deadline:
            return run
        await asyncio.sleep(0.1)


def _duration(step: dict[str, Any]) -> float:
    from datetime import datetime

    if not step.get("started_at") or not step.get("finished_at"):
        return 0.0
    a, b = datetime.fromisoformat(step["started_at"]), datetime.fromisoformat(step["finished_at"])
    return (b - a).total_seconds()


def _print_run(run: dict[str, Any], root: Path) -> None:
    print(f"\nrun {run['run_id']}: {run['status']}" + (f" ({run['error']})" if run.get("error") else ""))
    for step in run["steps"]:
        extra = ""
        if "rounds" in step["detail"]:
            extra = f"  rounds={len(step['detail']['rounds'])} outcome={step['detail'].get('outcome')}"
        print(f"  {step['name']:<13} {step['status']:<10} {_duration(step):6.2f}s{extra}")
    print(f"branch:         {run.get('branch')}")
    print(f"session:        {run.get('session_id')}  turns={run.get('turns')}  cost=${run.get('cost_usd')}")


async def _remote_log(remote: Path, branch: str | None) -> str:
    if not branch:
        return "(none)"
    res = await run_command(["git", "log", "-1", "--format=%h %s (%an)", branch], cwd=remote, env=None,
                            timeout=30)
    return res.output.strip() or "(branch not pushed)"


def _pr_record(path: Path, branch: str | None) -> dict[str, Any] | None:
    from app.services.github.local import LocalPullRequests

    matches = [p for p in LocalPullRequests(path).records() if branch and p.get("head") == branch]
    return matches[-1] if matches else None
