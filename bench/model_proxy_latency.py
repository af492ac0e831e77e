"""Model proxy latency: what the proxy adds to one model request (numbers, no asserts).

Starts the scripted Anthropic fake (tests/fakes/anthropic_api.py) on 127.0.0.1, the model proxy on
a Unix socket in front of it, and a minimal TCP -> Unix socket relay thread (what the sandbox's
relay does). Then sends N sequential streaming `POST /v1/messages` (stream: true, as the CLI does;
the fake answers with a full SSE message) over three paths, each with its own keep-alive httpx
client, interleaved request by request so drift hits all three alike:
  direct  : client -> fake over TCP
  uds     : client -> proxy (Unix socket) -> fake over TCP
  relay   : client -> TCP relay -> proxy (Unix socket) -> fake over TCP   (the sandbox's path)
Each sample is the wall time from sending the request to having read the whole SSE body. The fake's
sockets get TCP_NODELAY (see main): otherwise its small writes add ~40 ms to every path alike.

    uv run python bench/model_proxy_latency.py [--n 300]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.services.model_proxy import ModelProxyServer  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.fakes import anthropic_api  # noqa: E402
from tests.fakes.anthropic_api import FakeAnthropicAPI, Rule, text  # noqa: E402
from tests.services.model_proxy.relay import TcpToUnixRelay  # noqa: E402

BODY = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": True,
        "messages": [{"role": "user", "content": "bench " + "x" * 2000}]}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the proxy's per-request line is not what we measure
    # The fake writes an answer in several small send()s; with Nagle on its socket each waits for
    # the reader's delayed ACK (~40 ms, on every path alike). A real upstream does not answer like
    # that, so the fake's sockets get TCP_NODELAY here (this process only).
    anthropic_api._Handler.disable_nagle_algorithm = True

    tmp = Path(tempfile.mkdtemp(prefix="mpb-", dir="/tmp"))
    with FakeAnthropicAPI() as fake:
        fake.script(Rule(turns=[text("a short answer " * 20, usage={
            "input_tokens": 1200, "output_tokens": 80, "cache_read_input_tokens": 5000})]))
        settings = make_settings(tmp / "ws", ANTHROPIC_API_KEY="bench-real-key", ANTHROPIC_BASE_URL=fake.url)
        proxy = ModelProxyServer(settings, tmp / "model.sock", environ={})
        proxy.start()
        token = proxy.grant("bench", budget_usd=1e9)
        headers = {"x-api-key": token, "anthropic-version": "2023-06-01"}
        try:
            with TcpToUnixRelay(proxy.socket_path) as relay:
                clients = {
                    "direct": httpx.Client(base_url=fake.url, headers=headers),
                    "uds": httpx.Client(transport=httpx.HTTPTransport(uds=str(proxy.socket_path)),
                                        base_url="http://proxy", headers=headers),
                    "relay": httpx.Client(base_url=relay.url, headers=headers),
                }
                samples: dict[str, list[float]] = {name: [] for name in clients}
                names = list(clients)
                for i in range(args.warmup + args.n):
                    order = names[i % 3:] + names[: i % 3]
                    for name in order:
                        t0 = time.perf_counter()
                        r = clients[name].post("/v1/messages", json=BODY)
                        assert r.status_code == 200, r.status_code
                        assert r.content.endswith(b'message_stop"}\n\n'), r.content[-80:]
                        if i >= args.warmup:
                            samples[name].append((time.perf_counter() - t0) * 1000)
                for c in clients.values():
                    c.close()
                connections = proxy.connections_accepted
        finally:
            usage = proxy.usage(token)
            proxy.close()
            shutil.rmtree(tmp, ignore_errors=True)

    print(__doc__.split("\n\n")[0])
    print(f"\nN={args.n} sequential streaming requests per path (after {args.warmup} warm-up), "
          f"keep-alive clients; proxy connections accepted: {connections} (2 = keep-alive held)")
    print(f"proxy metered {usage.requests} requests, {usage.input_tokens} input tokens, "
          f"${usage.cost_usd:.4f}\n")
    print(f"{'path':8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, values in samples.items():
        print(f"{name:8} {pct(values, 50):8.3f} {pct(values, 95):8.3f} {pct(values, 99):8.3f} "
              f"{statistics.fmean(values):8.3f}")
    print("\nadded by the proxy (path minus direct):")
    for name in ("uds", "relay"):
        print(f"  {name:6} p50 +{pct(samples[name], 50) - pct(samples['direct'], 50):.3f} ms   "
              f"p95 +{pct(samples[name], 95) - pct(samples['direct'], 95):.3f} ms   "
              f"p99 +{pct(samples[name], 99) - pct(samples['direct'], 99):.3f} ms")


if __name__ == "__main__":
    main()
