"""Rate limiting through the real app: 429 with the JSON error shape, keyed on the real client —
forwarding headers believed only from trusted proxies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.intake.webhook_client import assert_error, post, runs, service


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[TestClient]:
    """A service allowing 3 deliveries a minute per client; the test client is 127.0.0.1 (trusted)."""
    with service(tmp_path, RATE_LIMIT="3/minute") as tc:
        yield tc


def send(client: TestClient, key: str, **headers: str) -> Any:
    return post(client, {"key": key, "summary": "rl"}, {k.replace("_", "-"): v for k, v in headers.items()})


def test_fourth_delivery_in_a_minute_is_429_and_creates_no_run(limited: TestClient) -> None:
    for n in range(1, 4):
        assert send(limited, f"RL-{n}").status_code == 202
    r = send(limited, "RL-4")
    body = assert_error(r, 429, "rate_limited")
    assert "3 per 1 minute" in body["detail"]
    assert int(r.headers["Retry-After"]) > 0
    assert runs(limited, "RL-4") == []


def test_limit_counts_refused_deliveries_too(limited: TestClient) -> None:
    # bad requests still cost the caller: a flood of garbage cannot go unthrottled
    for _ in range(3):
        assert post(limited, b"garbage").status_code == 400
    assert_error(send(limited, "RL-5"), 429, "rate_limited")


def test_forwarded_clients_behind_a_trusted_proxy_have_their_own_budget(limited: TestClient) -> None:
    for n in range(3):
        assert send(limited, f"RLA-{n + 1}", X_Forwarded_For="198.51.100.1").status_code == 202
    assert send(limited, "RLA-9", X_Forwarded_For="198.51.100.1").status_code == 429
    # another client behind the same proxy is unaffected, by XFF or by Cloudflare's header
    assert send(limited, "RLB-1", X_Forwarded_For="198.51.100.2").status_code == 202
    assert send(limited, "RLC-1", CF_Connecting_IP="198.51.100.3").status_code == 202
    # a forged left-most XFF entry does not give the limited client a fresh budget
    r = send(limited, "RLA-10", X_Forwarded_For="203.0.113.77, 198.51.100.1")
    assert r.status_code == 429
    # the proxy itself (no forwarding header) has its own, untouched budget
    assert send(limited, "RLD-1").status_code == 202


def test_headers_from_an_untrusted_peer_are_ignored(limited: TestClient) -> None:
    # same app, a second client whose peer address is not a trusted proxy (no second lifespan)
    outsider = TestClient(limited.app, client=("203.0.113.5", 40000))
    for n in range(3):
        assert send(outsider, f"RLU-{n + 1}", X_Forwarded_For=f"198.51.100.{50 + n}").status_code == 202
    r = send(outsider, "RLU-4", X_Forwarded_For="198.51.100.99", CF_Connecting_IP="198.51.100.98")
    assert_error(r, 429, "rate_limited")
    # the trusted loopback client still has its whole budget
    assert send(limited, "RLU-5").status_code == 202
