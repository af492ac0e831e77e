"""POST /webhook/jira through the real app: every payload shape, the ignore rules, and every class
of bad input with its status code and no run created (checked through GET /runs)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import services_of
from tests.intake.conftest import load_fixture, load_raw
from tests.intake.webhook_client import assert_error, post, runs, service

OWN_ACCOUNT = "service-account-0001"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One service for the module (development, no webhook secret): triggers configured, own account
    known, three projects allowed."""
    with service(
        tmp_path_factory.mktemp("svc"),
        TRIGGER_STATUS="Ready for AI",
        TRIGGER_LABEL="auto-code",
        JIRA_ACCOUNT_ID=OWN_ACCOUNT,
        ALLOWED_PROJECTS="PROJ,SP,DEMO",
    ) as tc:
        yield tc


def accepted(client: TestClient, body: dict, key: str) -> dict:
    r = post(client, body)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["status"] == "queued", answer
    assert answer["run_id"].startswith(f"{key}:")
    run = client.get(f"/runs/{answer['run_id']}").json()
    assert run["ticket"] == key
    return answer


class TestShapesStartWork:
    @pytest.mark.parametrize(
        ("fixture", "key"),
        [
            ("system_issue_created", "PROJ-42"),
            ("system_issue_created_adf", "PROJ-43"),
            ("system_issue_updated_status", "PROJ-44"),
            ("system_issue_updated_label", "PROJ-45"),
            ("automation_jira_format", "SP-53"),
            ("automation_format", "SP-54"),
            ("custom_minimal", "DEMO-7"),
            ("custom_issue_fields", "DEMO-8"),
        ],
    )
    def test_fixture_is_queued(self, client: TestClient, fixture: str, key: str) -> None:
        accepted(client, load_fixture(fixture), key)
        assert len(runs(client, key)) == 1

    def test_raw_fixture_bytes_with_charset(self, client: TestClient) -> None:
        body = json.loads(load_raw("custom_minimal"))
        body["key"] = "DEMO-70"
        r = post(client, json.dumps(body).encode(), {"Content-Type": "application/json; charset=UTF-8"})
        assert r.status_code == 202 and r.json()["status"] == "queued"

    def test_adf_description_reaches_the_run_as_text(self, client: TestClient) -> None:
        body = load_fixture("system_issue_created_adf")
        body["issue"]["key"] = "PROJ-143"
        accepted(client, body, "PROJ-143")
        stored = services_of(client.app).store
        import anyio

        row = anyio.run(stored.get_run_row, runs(client, "PROJ-143")[0]["run_id"])
        ticket = json.loads(row["ticket_json"])
        assert ticket["description"].startswith("The banner shows **yesterday**.")
        assert ticket["url"] == "https://acme.atlassian.net/browse/PROJ-143"
        assert ticket["source"] == "system_webhook"

    def test_second_delivery_is_a_duplicate_of_the_queued_run(self, client: TestClient) -> None:
        body = {"key": "DEMO-500", "summary": "twice"}
        first = accepted(client, body, "DEMO-500")
        r = post(client, body)
        assert r.status_code == 202
        assert r.json() == {"status": "duplicate", "run_id": first["run_id"]}
        assert len(runs(client, "DEMO-500")) == 1


class TestIgnored:
    @pytest.mark.parametrize(
        ("fixture", "key", "reason"),
        [
            ("system_comment_created", "PROJ-42", "event comment_created does not start work"),
            ("system_issue_deleted", "PROJ-47", "event jira:issue_deleted does not start work"),
            ("system_issue_updated_summary", "PROJ-46", "update does not match the trigger"),
        ],
    )
    def test_ignored_event(self, client: TestClient, fixture: str, key: str, reason: str) -> None:
        before = runs(client, key)
        r = post(client, load_fixture(fixture))
        assert r.status_code == 202
        body = r.json()
        assert body["status"] == "ignored" and body["reason"].startswith(reason)
        assert runs(client, key) == before

    def test_own_account_actor(self, client: TestClient) -> None:
        body = load_fixture("system_issue_created")
        body["issue"]["key"] = "PROJ-900"
        body["user"]["accountId"] = OWN_ACCOUNT
        r = post(client, body)
        assert r.json() == {"status": "ignored", "reason": "event caused by the service's own Jira account"}
        assert runs(client, "PROJ-900") == []

    def test_project_not_allowed(self, client: TestClient) -> None:
        r = post(client, {"key": "OTHER-1", "summary": "x"})
        assert r.status_code == 202
        assert r.json() == {"status": "ignored", "reason": "project OTHER is not in ALLOWED_PROJECTS"}
        assert runs(client, "OTHER-1") == []

    def test_ignored_event_needs_no_issue(self, client: TestClient) -> None:
        r = post(client, {"webhookEvent": "sprint_started", "sprint": {"id": 1}})
        assert r.status_code == 202 and r.json()["status"] == "ignored"


BAD_KEYS = ["PROJ-1\n", "-PROJ-1", "PROJ-1;rm -rf ~", "PROJ-1/../../etc", "proj-12", "\u0420ROJ-1",
            "PROJ-0", "PROJ-1 ", "PROJ-\u0661", "PROJ-1\u0661", "PROJ-1\uff11"]


class TestBadInputCreatesNoRun:
    """Each class of bad input: its status code, the JSON error shape, and no run created."""

    @pytest.fixture(autouse=True)
    def _no_new_runs(self, client: TestClient) -> Iterator[None]:
        before = len(runs(client))
        yield
        assert len(runs(client)) == before

    @pytest.mark.parametrize(
        ("raw", "status", "code"),
        [
            (b"", 400, "invalid_json"),
            (b"   \n", 400, "invalid_json"),
            (b'{"key": "PROJ-1"', 400, "invalid_json"),
            (b"key=PROJ-1", 400, "invalid_json"),
            (b"\xff\xfe{}", 400, "invalid_json"),
            (b"[" * 50_000, 400, "invalid_json"),
            (b"[]", 422, "invalid_payload"),
            (b'[{"key": "PROJ-1"}]', 422, "invalid_payload"),
            (b'"PROJ-1"', 422, "invalid_payload"),
            (b"null", 422, "invalid_payload"),
        ],
    )
    def test_not_a_json_object(self, client: TestClient, raw: bytes, status: int, code: str) -> None:
        assert_error(post(client, raw), status, code)

    @pytest.mark.parametrize(
        "body",
        [
            {"summary": "no key"},
            {"key": 1},
            {"key": ["PROJ-1"]},
            {"key": "PROJ-1", "summary": 7},
            {"key": "PROJ-1", "description": [1, 2]},
            {"key": "PROJ-1", "labels": "auto-code"},
            {"issue": "PROJ-1"},
            {"issue": {"key": "PROJ-1", "fields": "x"}},
            {"webhookEvent": ["jira:issue_created"], "issue": {"key": "PROJ-1"}},
        ],
    )
    def test_wrong_types_are_422(self, client: TestClient, body: dict) -> None:
        assert_error(post(client, body), 422, "invalid_payload")

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_bad_key_in_custom_body_is_400(self, client: TestClient, key: str) -> None:
        body = assert_error(post(client, {"key": key, "summary": "x"}), 400, "invalid_key")
        assert "expected PROJECT-123" in body["detail"]

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_bad_key_in_system_webhook_is_400(self, client: TestClient, key: str) -> None:
        body = load_fixture("system_issue_created")
        body["issue"]["key"] = key
        assert_error(post(client, body), 400, "invalid_key")

    @pytest.mark.parametrize(
        "content_type",
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
         "application/jsonp", ""],
    )
    def test_wrong_content_type_is_415(self, client: TestClient, content_type: str) -> None:
        r = client.post("/webhook/jira", content=b'{"key": "DEMO-1"}', headers={"Content-Type": content_type})
        assert_error(r, 415, "unsupported_media_type")

    def test_two_mib_body_is_413(self, client: TestClient) -> None:
        big = json.dumps({"key": "DEMO-2", "description": "x" * (2 * 1024 * 1024)}).encode()
        assert_error(post(client, big), 413, "payload_too_large")

    def test_two_mib_chunked_body_without_length_is_413(self, client: TestClient) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"key": "DEMO-3", "description": "'
            for _ in range(32):
                yield b"x" * 65536
            yield b'"}'

        r = client.post("/webhook/jira", content=chunks(), headers={"Content-Type": "application/json"})
        assert_error(r, 413, "payload_too_large")

    def test_lying_content_length_is_refused_before_reading(self, client: TestClient) -> None:
        r = client.post("/webhook/jira", content=b"{}",
                        headers={"Content-Type": "application/json", "Content-Length": str(10**9)})
        assert_error(r, 413, "payload_too_large")

    def test_wrong_method(self, client: TestClient) -> None:
        assert client.get("/webhook/jira").status_code == 405


def test_body_of_exactly_the_limit_is_accepted(client: TestClient) -> None:
    limit = client.app.state.settings.max_body_bytes  # type: ignore[attr-defined]
    core = json.dumps({"key": "DEMO-600", "summary": "edge"}).encode()
    exact = core[:-1] + b" " * (limit - len(core)) + b"}"
    assert len(exact) == limit
    assert post(client, exact).status_code == 202
    assert_error(post(client, exact[:-1] + b" }"), 413, "payload_too_large")
