"""Webhook auth through the real app: token header, HMAC signature, and never the query string."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.intake.auth import sign
from tests.intake.webhook_client import assert_error, post, runs, service

TOKEN = "token-for-tests-0123456789"
HMAC_KEY = "hmac-key-for-tests-0123456789"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with service(tmp_path_factory.mktemp("svc"), WEBHOOK_SECRET=TOKEN, JIRA_WEBHOOK_SECRET=HMAC_KEY) as tc:
        yield tc


def body_for(key: str) -> bytes:
    return json.dumps({"key": key, "summary": "auth"}).encode()


def refused(client: TestClient, key: str, response: object, detail: str) -> None:
    body = assert_error(response, 401, "unauthorized")
    assert body["detail"] == detail
    assert TOKEN not in body["detail"] and HMAC_KEY not in body["detail"]
    assert runs(client, key) == []


def test_no_credentials(client: TestClient) -> None:
    refused(client, "AUTH-1", post(client, body_for("AUTH-1")),
            "missing X-Webhook-Token or X-Hub-Signature header")


def test_wrong_token(client: TestClient) -> None:
    r = post(client, body_for("AUTH-2"), {"X-Webhook-Token": TOKEN[:-1] + "x"})
    refused(client, "AUTH-2", r, "invalid X-Webhook-Token or X-Hub-Signature")


def test_right_token(client: TestClient) -> None:
    r = post(client, body_for("AUTH-3"), {"X-Webhook-Token": TOKEN})
    assert r.status_code == 202 and r.json()["status"] == "queued"
    assert len(runs(client, "AUTH-3")) == 1


def test_right_hmac(client: TestClient) -> None:
    raw = body_for("AUTH-4")
    r = post(client, raw, {"X-Hub-Signature": sign(raw, HMAC_KEY)})
    assert r.status_code == 202 and r.json()["status"] == "queued"


def test_hmac_of_a_different_body(client: TestClient) -> None:
    signature = sign(body_for("AUTH-5"), HMAC_KEY)
    r = post(client, body_for("AUTH-6"), {"X-Hub-Signature": signature})
    refused(client, "AUTH-6", r, "invalid X-Webhook-Token or X-Hub-Signature")


def test_hmac_with_the_wrong_key(client: TestClient) -> None:
    raw = body_for("AUTH-7")
    r = post(client, raw, {"X-Hub-Signature": sign(raw, HMAC_KEY + "x")})
    refused(client, "AUTH-7", r, "invalid X-Webhook-Token or X-Hub-Signature")


def test_hmac_signed_with_the_token_secret(client: TestClient) -> None:
    raw = body_for("AUTH-8")
    r = post(client, raw, {"X-Hub-Signature": sign(raw, TOKEN)})
    refused(client, "AUTH-8", r, "invalid X-Webhook-Token or X-Hub-Signature")


@pytest.mark.parametrize("param", ["token", "X-Webhook-Token", "secret", "webhook_secret"])
def test_token_in_query_string_is_never_accepted(client: TestClient, param: str) -> None:
    r = post(client, body_for("AUTH-9"), params={param: TOKEN})
    body = assert_error(r, 401, "unauthorized")
    assert "query string are not accepted" in body["detail"]
    assert runs(client, "AUTH-9") == []


def test_auth_is_checked_before_the_body_is_trusted(client: TestClient) -> None:
    # an unauthenticated caller learns nothing about payload validation
    assert_error(post(client, b"not json"), 401, "unauthorized")
    assert_error(post(client, {"key": "bad key"}), 401, "unauthorized")


def test_health_needs_no_auth(client: TestClient) -> None:
    assert client.get("/health").status_code == 200


def test_development_without_secret_accepts(tmp_path: Path) -> None:
    with service(tmp_path) as tc:
        r = post(tc, body_for("AUTH-10"))
        assert r.status_code == 202 and r.json()["status"] == "queued"
