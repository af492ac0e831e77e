"""The service's CPU per accepted delivery under the intake bench's closed load: numbers, no asserts.

One service process as bench/webhook_latency.py starts it (uvicorn, mock Claude, local PRs,
QUEUE_WORKER=false: it accepts and hands off to the DBOS queue but starts no run), warmed up, then
`--n` token-authenticated deliveries of distinct tickets over 16 keep-alive connections. The figure
is the server's CPU time (user + system of all its threads, from /proc) from the first delivery
until every accepted one is a run record and a DBOS workflow (so the dispatcher's decide and
enqueue count), divided by the deliveries accepted; the event loop's thread is shown apart (the
rest is the store's and DBOS's worker threads: the accepts' and handoffs' transactions). Each round
is a fresh service; the median is printed with the machine's load. Its anchor is the fsync'd-insert
endpoint's CPU per request in bench/webhook_latency.py (same kind of figure, same client).

To see where the CPU goes, record a round with py-spy (PyPI; `uv tool install py-spy`):
`--py-spy out.txt` writes its raw collapsed stacks (`--gil`: only the thread holding the GIL).

    uv run python bench/intake_cpu.py [--n 3000] [--rounds 3] [--pg] [--py-spy FILE [--gil]]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import webhook_latency as wl  # the same service, client and checks


def thread_ticks(pid: int) -> dict[int, int]:
    """User + system clock ticks of each thread of `pid`."""
    out: dict[int, int] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(tid)] = int(fields[11]) + int(fields[12])
    return out


def start_py_spy(pid: int, out: str, *, gil: bool) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` at 250 Hz into `out` (raw collapsed stacks) until SIGINT."""
    cmd = [shutil.which("py-spy") or "py-spy", "record", "-p", str(pid), "-r", "250", "-f", "raw",
           "-o", out, "--threads", "--nonblocking", *(["--gil"] if gil else [])]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def one_round(root: Path, repo: Path, args: argparse.Namespace, n: int) -> tuple[float, float, float]:
    """(ms per delivery, of it on the event loop, req/s) of one fresh service."""
    db, drop = wl.pg_database(args.pg_admin_url) if args.pg else (None, None)
    server, url = wl.start_service(root, f"svc-{n}", repo, db, runs=False)
    spy = None
    try:
        pid = server.proc.pid
        warm = await wl.closed_loop("warm-up", server.port, "/webhook/jira", 300, f"W{n}")
        wl.lost(url, warm.queued)  # the warm-up's handoff done before the clock starts
        await asyncio.sleep(1.0)
        if args.py_spy and n == args.rounds:
            spy = start_py_spy(pid, args.py_spy, gil=args.gil)
            await asyncio.sleep(1.0)
        before = thread_ticks(pid)
        res = await wl.closed_loop("closed loop 16", server.port, "/webhook/jira", args.n, f"C{n}")
        missing = wl.lost(url, res.queued)
        after = thread_ticks(pid)
        tick = os.sysconf("SC_CLK_TCK")
        accepted = len(res.queued)
        total = sum(v - before.get(t, 0) for t, v in after.items()) / tick * 1000 / accepted
        loop = (after.get(pid, 0) - before.get(pid, 0)) / tick * 1000 / accepted
        print(f"  round {n}: {total:.2f} ms CPU per delivery ({loop:.2f} on the event loop), "
              f"{res.rate:.0f} req/s, p99 {res.pct(99):.0f} ms, {accepted} accepted, lost {missing}, "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        return total, loop, res.rate
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
        server.stop()
        if drop is not None:
            drop()


async def main_async(args: argparse.Namespace) -> None:
    backend = "PostgreSQL" if args.pg else "SQLite"
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {backend}, "
          f"{args.n} deliveries per round")
    with tempfile.TemporaryDirectory(prefix="auto-code-cpu-") as tmp:
        root = Path(tmp)
        repo = wl.make_repo(root)
        rounds = [await one_round(root, repo, args, n) for n in range(1, args.rounds + 1)]
    total, loop, rate = (statistics.median(r[i] for r in rounds) for i in range(3))
    print(f"service CPU per accepted delivery, closed loop 16, {backend}: median {total:.2f} ms "
          f"({loop:.2f} on the event loop), {rate:.0f} req/s, over {len(rounds)} rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="deliveries per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--pg-admin-url", default=wl.PG_ADMIN, help="where throwaway databases are created")
    parser.add_argument("--py-spy", default=None, help="record the last round with py-spy into this file")
    parser.add_argument("--gil", action="store_true", help="py-spy: only the thread holding the GIL")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
