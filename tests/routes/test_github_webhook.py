"""`POST /webhook/github` at the edge (issue 11 item 1): the signature over the raw body, the
headers GitHub sends, bad bodies → 4xx `{"error","detail"}` (never a 5xx), redeliveries answered
as before, and events that are not the service's → 202 `ignored` with a reason. The real app
(lifespan, DBOS on SQLite, the follow-up tables) with the scripted Claude."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.github_webhooks import deliver, sign
from tests.services.runner.harness import Service, running_service

SECRET = "gh-webhook-secret-for-route-tests-42"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    # One service for the module: these tests only read answers (each delivery has its own id).
    tmp_path: Path = tmp_path_factory.mktemp("github-webhook")
    # GITHUB_REPOSITORY names the one repository deliveries must come from (PR records stay local).
    with running_service(tmp_path, GITHUB_WEBHOOK_SECRET=SECRET, GITHUB_REPOSITORY="acme/greeter") as service:
        yield service


def _suite(conclusion: str = "failure", branch: str = "ticket/proj-9", number: int = 9) -> dict[str, Any]:
    sha = "a" * 40
    return {
        "action": "completed",
        "repository": {"full_name": "acme/greeter"},
        "check_suite": {
            "id": 1,
            "head_sha": sha,
            "conclusion": conclusion,
            "status": "completed",
            "pull_requests": [
                {"number": number, "head": {"ref": branch, "sha": sha}, "base": {"ref": "main"}}
            ],
        },
    }


def _error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"}, body
    return dict(body)


class TestSignature:
    def test_missing_signature_is_401(self, svc: Service) -> None:
        body = _error(deliver(svc.client, "check_suite", _suite(), secret=None), 401)
        assert body["detail"] == "missing X-Hub-Signature-256 header"

    def test_wrong_secret_is_401(self, svc: Service) -> None:
        body = _error(deliver(svc.client, "check_suite", _suite(), secret="not-the-secret-at-all"), 401)
        assert body["detail"] == "invalid X-Hub-Signature-256"

    def test_a_signature_of_another_body_is_401(self, svc: Service) -> None:
        other = sign(SECRET, json.dumps(_suite("success")).encode())
        _error(deliver(svc.client, "check_suite", _suite(), secret=None, signature=other), 401)

    @pytest.mark.parametrize("header", ["sha1=abc", "sha256=", "sha256=zz", "garbage", ""])
    def test_malformed_signature_headers_are_401(self, svc: Service, header: str) -> None:
        _error(deliver(svc.client, "check_suite", _suite(), secret=None, signature=header), 401)

    def test_the_right_signature_is_accepted(self, svc: Service) -> None:
        resp = deliver(svc.client, "ping", {"zen": "Design for failure.", "hook_id": 1}, secret=SECRET)
        assert resp.status_code == 202 and resp.json() == {
            "status": "ignored",
            "reason": "ping: the webhook is wired",
        }


class TestBadInput:
    def test_unparsable_json_is_400(self, svc: Service) -> None:
        body = _error(deliver(svc.client, "check_suite", b"{not json", secret=SECRET), 400)
        assert "JSON" in body["detail"]

    @pytest.mark.parametrize("raw", [b"[]", b"42", b'"text"', b"null"])
    def test_a_body_that_is_not_an_object_is_422(self, svc: Service, raw: bytes) -> None:
        _error(deliver(svc.client, "check_suite", raw, secret=SECRET), 422)

    def test_missing_event_or_delivery_headers_are_400(self, svc: Service) -> None:
        raw = json.dumps(_suite()).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, raw)}
        no_event = svc.client.post(
            "/webhook/github", content=raw, headers={**headers, "X-GitHub-Delivery": "d-1"}
        )
        no_id = svc.client.post("/webhook/github", content=raw, headers={**headers, "X-GitHub-Event": "ping"})
        assert "X-GitHub-Event" in _error(no_event, 400)["detail"]
        assert "X-GitHub-Delivery" in _error(no_id, 400)["detail"]

    def test_another_media_type_is_415(self, svc: Service) -> None:
        raw = b"payload"
        resp = svc.client.post(
            "/webhook/github",
            content=raw,
            headers={
                "Content-Type": "text/plain",
                "X-Hub-Signature-256": sign(SECRET, raw),
                "X-GitHub-Event": "ping",
                "X-GitHub-Delivery": "d-2",
            },
        )
        _error(resp, 415)

    def test_a_form_encoded_delivery_is_read_like_github_sends_it(self, svc: Service) -> None:
        from urllib.parse import urlencode

        raw = urlencode({"payload": json.dumps({"zen": "Keep it logically awesome."})}).encode()
        resp = svc.client.post(
            "/webhook/github",
            content=raw,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Hub-Signature-256": sign(SECRET, raw),
                "X-GitHub-Event": "ping",
                "X-GitHub-Delivery": "d-3",
            },
        )
        assert resp.status_code == 202 and resp.json()["status"] == "ignored"

    def test_a_body_over_the_limit_is_413(self, svc: Service) -> None:
        raw = b'{"pad": "' + b"x" * 2_000_000 + b'"}'
        _error(deliver(svc.client, "check_suite", raw, secret=SECRET), 413)

    @pytest.mark.parametrize(
        "event,payload",
        [
            ("check_suite", {"action": "completed", "check_suite": "x"}),
            (
                "check_suite",
                {"action": "completed", "check_suite": {"conclusion": "failure", "pull_requests": "no"}},
            ),
            (
                "check_run",
                {"action": "completed", "check_run": {"conclusion": "failure", "pull_requests": [None, 3]}},
            ),
            ("workflow_run", {"action": "completed", "workflow_run": None}),
            ("pull_request_review", {"action": "submitted", "review": [], "pull_request": {"number": "1"}}),
            (
                "pull_request_review_comment",
                {"action": "created", "pull_request": {"number": 1, "head": None}},
            ),
            (
                "issue_comment",
                {"action": "created", "issue": {"number": 1, "pull_request": {}}, "comment": {}},
            ),
            ("pull_request", {"action": "closed", "pull_request": {"number": True}}),
            ("pull_request", {"action": ["closed"]}),
        ],
    )
    def test_hostile_shapes_are_ignored_not_5xx(
        self, svc: Service, event: str, payload: dict[str, Any]
    ) -> None:
        resp = deliver(svc.client, event, payload, secret=SECRET)
        assert resp.status_code == 202 and resp.json()["status"] == "ignored", resp.text


class TestDecisions:
    def test_a_redelivery_gets_the_same_answer(self, svc: Service) -> None:
        first = deliver(
            svc.client,
            "check_suite",
            _suite(),
            secret=SECRET,
            delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        )
        again = deliver(
            svc.client,
            "check_suite",
            _suite(),
            secret=SECRET,
            delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        )
        assert first.json()["status"] == "ignored"
        assert again.status_code == 202 and again.json()["status"] == "ignored"
        assert "was received before" in again.json()["reason"]

    def test_a_pr_the_service_did_not_open_is_ignored(self, svc: Service) -> None:
        resp = deliver(svc.client, "check_suite", _suite(), secret=SECRET)
        assert resp.json() == {
            "status": "ignored",
            "reason": "pull request #9 in acme/greeter was not opened by auto-code",
        }

    def test_a_repository_the_service_is_not_configured_for_is_ignored(self, svc: Service) -> None:
        payload = {**_suite(), "repository": {"full_name": "Someone/Else"}}
        resp = deliver(svc.client, "check_suite", payload, secret=SECRET)
        assert resp.status_code == 202 and resp.json() == {
            "status": "ignored",
            "reason": "repository someone/else is not one auto-code is configured for "
            "(REPOSITORIES_FILE, or GITHUB_REPOSITORY): no follow-ups",
        }

    def test_another_branch_or_a_green_suite_or_another_event_is_ignored_with_its_reason(
        self, svc: Service
    ) -> None:
        other = deliver(svc.client, "check_suite", _suite(branch="feature/x"), secret=SECRET).json()
        green = deliver(svc.client, "check_suite", _suite("success"), secret=SECRET).json()
        push = deliver(svc.client, "push", {"ref": "refs/heads/main"}, secret=SECRET).json()
        assert other["reason"] == "check_suite failed on no pull request of an auto-code branch"
        assert green["reason"] == "check_suite concluded success: nothing to fix"
        assert push["reason"] == "event 'push' is not one auto-code acts on"


@pytest.mark.parametrize(
    "event",
    [
        "check_suite",
        "check_run",
        "workflow_run",
        "pull_request_review",
        "pull_request_review_comment",
        "issue_comment",
        "pull_request",
    ],
)
@pytest.mark.parametrize("junk", [None, 1, "x", [], {}, [1, {"a": None}], {"number": {"x": 1}}])
def test_every_field_of_every_event_may_be_junk(svc: Service, event: str, junk: Any) -> None:
    """Every top-level and second-level field replaced by junk: always a 202 `ignored`, never a 5xx."""
    shapes = [
        {"action": junk},
        {"action": "completed", event: junk},
        {"action": "submitted", "review": junk, "pull_request": junk},
        {"action": "created", "comment": junk, "issue": junk, "pull_request": junk},
        {"action": "closed", "pull_request": {"number": 3, "head": junk, "merged": junk}},
        {"action": "completed", event: {"conclusion": "failure", "pull_requests": [junk]}},
        {
            "action": "completed",
            "repository": junk,
            event: {
                "conclusion": "failure",
                "pull_requests": [{"number": 3, "head": {"ref": "ticket/x-1", "sha": junk}}],
            },
        },
    ]
    for shape in shapes:
        resp = deliver(svc.client, event, shape, secret=SECRET)
        assert resp.status_code == 202 and resp.json()["status"] == "ignored", (shape, resp.text)


def test_bad_signatures_hit_the_abuse_limit_and_signed_deliveries_do_not(tmp_path: Path) -> None:
    with running_service(tmp_path, GITHUB_WEBHOOK_SECRET=SECRET, RATE_LIMIT="3/minute") as service:
        bad = [deliver(service.client, "ping", {"zen": "x"}, secret="wrong-secret-wrong-secret").status_code
               for _ in range(5)]
        good = [deliver(service.client, "ping", {"zen": "x"}, secret=SECRET).status_code for _ in range(10)]
        limited = deliver(service.client, "ping", {"zen": "x"}, secret="wrong-secret-wrong-secret")
    assert bad == [401, 401, 401, 429, 429]
    assert good == [202] * 10  # the abuse limit does not throttle proven deliveries
    assert _error(limited, 429)["error"] == "rate_limited" and limited.headers.get("retry-after")
