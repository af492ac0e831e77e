"""Rate limiting through the real app: 429 with the JSON error shape, keyed on the real client —
forwarding headers believed only from trusted proxies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.intake.auth import sign
from tests.conftest import make_settings
from tests.durability.service_proc import free_port
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


# ----- two budgets: the abuse limit, and authenticated deliveries (app/intake/rate_limit.py) -----
TOKEN = "token-for-limit-tests-0123456789"
HMAC_KEY = "hmac-key-for-limit-tests-0123456789"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    """Both secrets configured, the default abuse limit of 10 a minute, 2000 authenticated."""
    with service(tmp_path, WEBHOOK_SECRET=TOKEN, JIRA_WEBHOOK_SECRET=HMAC_KEY, RATE_LIMIT="10/minute",
                 RATE_LIMIT_AUTHENTICATED="2000/minute") as tc:
        yield tc


def _body(key: str) -> bytes:
    return json.dumps({"key": key, "summary": "bulk change"}).encode()


class TestBulkChange:
    def test_400_authenticated_deliveries_from_one_address_are_accepted(self, secured: TestClient) -> None:
        # Jira Automation's bulk change: one address, a valid token on every delivery, no retry of a 429.
        answers = [post(secured, _body(f"BULK-{n}"), {"X-Webhook-Token": TOKEN}) for n in range(1, 401)]
        assert [r.status_code for r in answers] == [202] * 400
        assert {r.json()["status"] for r in answers} == {"queued"}
        assert len(runs(secured)) == 400
        # The abuse limit still holds for the same address without the secret.
        for n in range(10):
            assert_error(post(secured, _body(f"ANON-{n}")), 401, "unauthorized")
        r = post(secured, _body("ANON-10"))
        assert_error(r, 429, "rate_limited")
        assert "10 per 1 minute" in r.json()["detail"] and int(r.headers["Retry-After"]) > 0
        # ...while authenticated deliveries from it go on being accepted.
        assert post(secured, _body("BULK-401"), {"X-Webhook-Token": TOKEN}).status_code == 202

    def test_signed_deliveries_count_as_authenticated(self, secured: TestClient) -> None:
        for n in range(30):
            raw = _body(f"SIG-{n + 1}")
            assert post(secured, raw, {"X-Hub-Signature": sign(raw, HMAC_KEY)}).status_code == 202
        assert len(runs(secured)) == 30


class TestFailedAuthIsTheAbuseBudget:
    def test_wrong_tokens_spend_it(self, secured: TestClient) -> None:
        for n in range(10):
            assert post(secured, _body(f"W-{n}"), {"X-Webhook-Token": TOKEN[:-1] + "x"}).status_code == 401
        assert_error(post(secured, _body("W-10"), {"X-Webhook-Token": "nope"}), 429, "rate_limited")

    def test_bad_signatures_spend_it_after_the_body_is_read(self, secured: TestClient) -> None:
        for n in range(10):
            raw = _body(f"S-{n}")
            wrong = sign(raw, "another-key-0123456789")
            assert post(secured, raw, {"X-Hub-Signature": wrong}).status_code == 401
        raw = _body("S-10")
        assert_error(post(secured, raw, {"X-Hub-Signature": sign(b"other", HMAC_KEY)}), 429, "rate_limited")
        # the budget is the address's: a request without any credential is refused as well
        assert_error(post(secured, _body("S-11")), 429, "rate_limited")

    def test_a_signed_request_refused_before_auth_spends_it(self, secured: TestClient) -> None:
        big = b" " * (1_048_576 + 1)  # over MAX_BODY_BYTES: 413 before the signature is checked
        for _ in range(10):
            assert post(secured, big, {"X-Hub-Signature": "sha256=00"}).status_code == 413
        assert_error(post(secured, _body("B-1"), {"X-Hub-Signature": "sha256=00"}), 429, "rate_limited")


class TestStorageSettings:
    def test_an_unknown_storage_is_refused_at_start_without_echoing_the_url(self, tmp_path: Path) -> None:
        from app.errors import ConfigError
        from app.main import create_app

        settings = make_settings(tmp_path, RATE_LIMIT_STORAGE_URL="nosuch://user:s3cret-pass@host/0")
        with pytest.raises(ConfigError) as err:
            create_app(settings)
        assert "s3cret-pass" not in str(err.value) and "nosuch" in str(err.value)
        assert "s3cret-pass" not in repr(settings)

    def test_an_unreachable_shared_store_lets_deliveries_through(self, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
        # The limits guard against abuse; an outage of their store must not lose tickets.
        url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        with service(tmp_path, WEBHOOK_SECRET=TOKEN, RATE_LIMIT_STORAGE_URL=url) as tc:
            r = post(tc, _body("DOWN-1"), {"X-Webhook-Token": TOKEN})
        assert r.status_code == 202 and r.json()["status"] == "queued"
        assert any(rec.getMessage() == "rate_limit_storage_failed" for rec in caplog.records)
