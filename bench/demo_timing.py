"""Where the time of `auto-code demo` goes (numbers, no asserts).

Runs the console entry point N times in fresh processes (as a newcomer would) and splits each run's
wall time into: process start-up (interpreter + imports), queue pickup (webhook accepted → first
step started), the model's share (the implement step and fix rounds, i.e. agent calls), and the rest
of the pipeline (git, checks, PR record).

    uv run python bench/demo_timing.py [--n 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _t(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def one_run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="auto-code-demo-bench-") as tmp:
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "app.cli", "demo", "--dir", tmp, "--json"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300, check=True)
        wall = time.perf_counter() - started
    out = proc.stdout
    run = json.loads(out[out.index("{\n"):])
    steps = [s for s in run["steps"] if s["started_at"] and s["finished_at"]]
    first_start = min(_t(s["started_at"]) for s in steps)
    last_end = max(_t(s["finished_at"]) for s in steps)
    agent = sum(_t(s["finished_at"]) - _t(s["started_at"]) for s in steps if s["name"] == "implement")
    pipeline = last_end - first_start
    return {
        "wall_s": wall,
        "pickup_s": first_start - _t(run["created_at"]),
        "pipeline_s": pipeline,
        "agent_s": agent,
        "outside_model_s": wall - agent,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5)
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.n)]
    print(f"auto-code demo, {args.n} runs (offline scripted editor), median / max:")
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"  {key:<16} {statistics.median(values):7.3f} s  {max(values):7.3f} s")


if __name__ == "__main__":
    main()
