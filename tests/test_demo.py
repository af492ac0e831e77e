"""`auto-code demo` as a newcomer runs it: the console entry point in a fresh process, no keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.services.github.local import LocalPullRequests

SECRET_NAMES = ("ANTHROPIC_API_KEY", "GH_TOKEN", "DATABASE_URL", "WEBHOOK_SECRET", "OPERATOR_TOKEN")


def test_demo_runs_the_pipeline_and_ends_with_a_pr_record(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SECRET_NAMES}
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--dir", str(tmp_path), "--json"],
        cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True, timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "run DEMO-1:" in out and ": succeeded" in out
    assert "branch:         ticket/demo-1" in out
    assert "DEMO-1: Add a farewell() function next to greet()" in out  # the commit subject
    run = json.loads(out[out.index("{\n"):])
    lint = next(s for s in run["steps"] if s["name"] == "lint")
    assert lint["detail"]["fix_rounds"] == 1  # the demo shows a real fix loop
    prs = LocalPullRequests(tmp_path / "workspace" / "pull-requests.json").records()
    assert [p["head"] for p in prs] == ["ticket/demo-1"]
    assert run["pr_url"] == prs[0]["html_url"]
    # After the PR (issue 11): the demo's CI fails once and a ci_fix follow-up pushes a second commit.
    assert f"follow-up: kind=ci_fix pr=#1 of run {run['run_id']}" in out
    assert "PR comment by auto-code: auto-code pushed a fix" in out
    assert "'reason': 'check_suite concluded success: nothing to fix'" in out
