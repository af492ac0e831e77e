"""How long a hostile delivery body stalls the event loop while it is parsed (numbers, no asserts).

A ticker task on the loop records the longest gap between its 1 ms sleeps while one body is parsed
three ways in the same run: inline on the loop, in a worker thread (`asyncio.to_thread`: the C JSON
decoder keeps the GIL), and the service's way (`app.intake.parse_pool.ParsePool`: inline up to
32 KiB, a worker process above). The anchor is the ticker's gap with nothing being parsed.

    uv run python bench/intake_parse_stall.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import Settings
from app.intake.parse_pool import IntakeRules, ParsePool, parse_delivery


def bodies() -> dict[str, bytes]:
    tiny = [{"type": "text", "text": "x"}] * 60_000  # ~1 MB of tiny text nodes
    doc = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": tiny}]}
    return {
        "typical (2 KB)": json.dumps({"key": "PROJ-1", "summary": "s", "description": "x" * 2000}).encode(),
        "hostile ADF (1 MB)": json.dumps({"key": "PROJ-2", "summary": "s", "description": doc}).encode(),
    }


async def max_gap(work: Callable[[], Awaitable[object]]) -> float:
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    gaps.clear()
    await work()
    done.set()
    await tick
    return max(gaps) * 1000 if gaps else 0.0


async def main(repeat: int) -> None:
    rules = IntakeRules.from_settings(Settings(WORKSPACE_DIR=tempfile.mkdtemp(), _env_file=None))  # type: ignore[call-arg]
    pool = ParsePool()
    await pool.parse(bodies()["hostile ADF (1 MB)"], rules, None)  # start the worker outside the figures
    print(f"longest event-loop gap (ms), median of {repeat}; {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'body':20} {'idle':>6} {'inline':>8} {'thread':>8} {'service':>8}")
    for name, raw in bodies().items():
        rows: dict[str, list[float]] = {"idle": [], "inline": [], "thread": [], "service": []}
        for _ in range(repeat):
            rows["idle"].append(await max_gap(lambda: asyncio.sleep(0.05)))

            async def inline(raw: bytes = raw) -> object:
                return parse_delivery(raw, rules, None)

            rows["inline"].append(await max_gap(inline))
            rows["thread"].append(
                await max_gap(lambda raw=raw: asyncio.to_thread(parse_delivery, raw, rules, None)))
            rows["service"].append(await max_gap(lambda raw=raw: pool.parse(raw, rules, None)))
        print(f"{name:20} " + " ".join(f"{statistics.median(v):8.1f}" for v in rows.values()))
    pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    asyncio.run(main(parser.parse_args().repeat))
