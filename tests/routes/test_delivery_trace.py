"""Every delivery leaves a trace: a rejected or ignored delivery logs exactly one line with its
outcome, reason and Jira's delivery id (X-Atlassian-Webhook-Identifier), never the body; a JSON
error says where the body broke (line and column)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.intake.webhook_client import assert_error, post, service

SECRET = "a-webhook-secret-0123456789"
BODY_MARK = "BODY-TEXT-MUST-NOT-BE-LOGGED"
DELIVERY = "4c7ab5bc-32f5-4ce1-9d0e-7a1d1e0e3a11"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with service(tmp_path_factory.mktemp("svc"), WEBHOOK_SECRET=SECRET, ALLOWED_PROJECTS="PROJ",
                 RATE_LIMIT="1000/minute") as tc:
        yield tc


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() in ("webhook_rejected", "webhook_ignored")]


def _send(client: TestClient, caplog: pytest.LogCaptureFixture, body: bytes | dict, *,
          token: str | None = SECRET,
          delivery: str | None = DELIVERY) -> tuple[object, list[logging.LogRecord]]:
    caplog.clear()
    headers = {"X-Atlassian-Webhook-Identifier": delivery} if delivery else {}
    if token:
        headers["X-Webhook-Token"] = token
    with caplog.at_level(logging.INFO):
        resp = post(client, body, headers)
    return resp, _lines(caplog)


def _no_body_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert BODY_MARK not in json.dumps(record.__dict__, default=str)


class TestOneLinePerDelivery:
    def test_a_rejected_delivery_logs_one_line_with_its_reason_and_id(
            self, client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
        resp, lines = _send(client, caplog, {"key": "PROJ-1", "summary": BODY_MARK}, token="wrong-token")
        assert_error(resp, 401, "unauthorized")
        (line,) = lines
        assert (line.outcome, line.reason, line.status, line.delivery_id) == (
            "rejected", "unauthorized", 401, DELIVERY)
        _no_body_in_logs(caplog)

    def test_an_ignored_delivery_logs_one_line_with_its_reason_and_id(
            self, client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
        resp, lines = _send(client, caplog, {"key": "OTHER-1", "summary": BODY_MARK})
        assert resp.json()["status"] == "ignored"
        (line,) = lines
        assert line.getMessage() == "webhook_ignored" and line.outcome == "ignored"
        assert line.delivery_id == DELIVERY and "ALLOWED_PROJECTS" in line.reason
        _no_body_in_logs(caplog)

    def test_an_invalid_key_is_named_by_its_code_not_its_value(self, client: TestClient,
                                                               caplog: pytest.LogCaptureFixture) -> None:
        resp, lines = _send(client, caplog, {"key": f"proj-1 {BODY_MARK}", "summary": "x"})
        assert_error(resp, 400, "invalid_key")
        (line,) = lines
        assert line.reason == "invalid_key"
        _no_body_in_logs(caplog)

    def test_a_hostile_delivery_id_is_not_logged(self, client: TestClient,
                                                 caplog: pytest.LogCaptureFixture) -> None:
        _, lines = _send(client, caplog, b"{", delivery="x\r injected=1 {json}")
        (line,) = lines
        assert line.delivery_id is None


class TestJsonErrorLocation:
    def test_the_error_says_where_the_body_broke(self, client: TestClient,
                                                 caplog: pytest.LogCaptureFixture) -> None:
        body = b'{\n  "key": "PROJ-1",\n  "summary": "' + BODY_MARK.encode() + b'" "x"\n}'
        resp, lines = _send(client, caplog, body)
        detail = assert_error(resp, 400, "invalid_json")["detail"]
        assert detail == "body is not valid JSON: Expecting ',' delimiter at line 3 column 45 (char 65)"
        (line,) = lines
        assert line.reason == "invalid_json" and "line 3 column 45" in line.detail
        _no_body_in_logs(caplog)

    def test_bytes_that_are_not_utf8_name_their_offset(self, client: TestClient,
                                                        caplog: pytest.LogCaptureFixture) -> None:
        resp, _ = _send(client, caplog, b'{"key": "PROJ-1", "summary": "\xff"}')
        assert "at byte" in assert_error(resp, 400, "invalid_json")["detail"]
