"""What the sandbox costs per call (numbers, no asserts).

Each figure beside its anchor, measured in the same run, interleaved call by call so machine load
hits both alike: the same command started by `app.proc.run_command` directly (the anchor), inside
the bubblewrap sandbox with no network (what a lint/test/setup call pays), and inside the sandbox
with a model endpoint (what a Claude CLI call pays on top: the relay's Python start-up before the
command). Commands: `true` (pure start-up) and `python3 -c pass` (an interpreter inside).

    uv run python bench/sandbox_startup.py [--n 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.proc import run_command, scrubbed_env  # noqa: E402
from app.services.sandbox import BwrapSandbox, Endpoint, SandboxCall  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(n: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="ac-bench-", dir=str(ROOT)))  # outside /tmp, as /workspace is
    worktree = base / "ws" / "worktrees" / "ticket-x"
    worktree.mkdir(parents=True)
    settings = Settings(WORKSPACE_DIR=str(base / "ws"), _env_file=None)  # type: ignore[call-arg]
    sandbox = BwrapSandbox(settings)
    sock_path = Path(tempfile.mkdtemp(prefix="ac-bench-sock-")) / "m.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    server.listen(1)
    env = scrubbed_env()
    plain = SandboxCall(worktree=worktree, env=env)
    relayed = SandboxCall(worktree=worktree, env=env, endpoints=(Endpoint("model", sock_path, 8790),))
    commands = {"true": ["/bin/true"], "python3 -c pass": [sys.executable, "-I", "-S", "-c", "pass"]}
    print(f"{n} calls per variant, interleaved; machine: {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'command':18} {'variant':22} {'p50 ms':>8} {'p95 ms':>8} {'added p50':>10}")
    for label, argv in commands.items():
        times: dict[str, list[float]] = {"direct": [], "sandbox (no network)": [], "sandbox + relay": []}
        for _ in range(n):
            t = time.perf_counter()
            await run_command(argv, cwd=worktree, env=env, timeout=30)
            times["direct"].append(time.perf_counter() - t)
            t = time.perf_counter()
            res = await sandbox.run(argv, plain, timeout=30, max_output_chars=1000)
            times["sandbox (no network)"].append(time.perf_counter() - t)
            assert res.ok, res.output
            t = time.perf_counter()
            res = await sandbox.run(argv, relayed, timeout=30, max_output_chars=1000)
            times["sandbox + relay"].append(time.perf_counter() - t)
            assert res.ok, res.output
        anchor = statistics.median(times["direct"]) * 1000
        for variant, values in times.items():
            p50 = statistics.median(values) * 1000
            added = "" if variant == "direct" else f"+{p50 - anchor:.1f}"
            print(f"{label:18} {variant:22} {p50:8.1f} {_pct(values, 0.95) * 1000:8.1f} {added:>10}")
    server.close()
    import shutil

    shutil.rmtree(base, ignore_errors=True)
    shutil.rmtree(sock_path.parent, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    asyncio.run(main(parser.parse_args().n))
