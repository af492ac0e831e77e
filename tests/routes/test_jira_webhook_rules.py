"""POST /webhook/jira through the real app: who may start work (issue_created trigger, account
allowlist, `*` projects) and hostile input (capped fields, bounded ADF, container cap) — never a 5xx."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from app.intake.limits import TRUNCATED_MARKER
from app.main import services_of
from tests.intake.conftest import load_fixture
from tests.intake.webhook_client import assert_error, post, runs, service

ACTOR = "5b10a2844c20165700ede21g"  # the system_issue_created fixture's actor and reporter


def created(key: str, *, labels: list[str] | None = None, status: str = "To Do") -> dict[str, Any]:
    body = load_fixture("system_issue_created")
    body["issue"]["key"] = key
    body["issue"]["fields"]["labels"] = labels if labels is not None else []
    body["issue"]["fields"]["status"]["name"] = status
    return body


def stored_ticket(client: TestClient, key: str) -> dict[str, Any]:
    (run,) = runs(client, key)
    row = anyio.run(services_of(client.app).store.get_run_row, run["run_id"])
    return json.loads(row["ticket_json"])


class TestIssueCreated:
    def test_without_trigger_or_opt_in_it_is_ignored_with_how_to_enable(self, tmp_path: Path) -> None:
        with service(tmp_path) as tc:
            r = post(tc, created("PROJ-1", labels=["auto-code"]))
            assert r.status_code == 202 and r.json()["status"] == "ignored"
            assert "START_ON_ISSUE_CREATED=true" in r.json()["reason"]
            assert "TRIGGER_LABEL" in r.json()["reason"]
            assert runs(tc, "PROJ-1") == []
            # an Automation/custom body still starts work: the rule chose the ticket
            assert post(tc, {"key": "PROJ-2", "summary": "x"}).json()["status"] == "queued"

    def test_only_issues_carrying_the_trigger_start(self, tmp_path: Path) -> None:
        with service(tmp_path, TRIGGER_LABEL="auto-code", TRIGGER_STATUS="Ready for AI") as tc:
            assert post(tc, created("PROJ-3", labels=["auto-code"])).json()["status"] == "queued"
            assert post(tc, created("PROJ-4", status="Ready for AI")).json()["status"] == "queued"
            r = post(tc, created("PROJ-5", labels=["frontend"]))
            assert r.json() == {"status": "ignored", "reason": "created issue does not carry the trigger "
                                "(label auto-code or status Ready for AI)"}
            assert runs(tc, "PROJ-5") == []

    def test_opt_in_starts_every_created_issue(self, tmp_path: Path) -> None:
        with service(tmp_path, START_ON_ISSUE_CREATED="true") as tc:
            assert post(tc, created("PROJ-6")).json()["status"] == "queued"


@pytest.fixture(scope="module")
def accounts_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with service(tmp_path_factory.mktemp("acc"), ALLOWED_JIRA_ACCOUNTS=f"{ACTOR},trusted-2",
                 START_ON_ISSUE_CREATED="true") as tc:
        yield tc


@pytest.fixture(scope="module")
def capped_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with service(tmp_path_factory.mktemp("cap"), MAX_DESCRIPTION_CHARS="5000") as tc:
        yield tc


class TestAllowedAccounts:
    @pytest.fixture
    def client(self, accounts_client: TestClient) -> TestClient:
        return accounts_client

    def test_listed_actor_starts(self, client: TestClient) -> None:
        assert post(client, created("ACC-1")).json()["status"] == "queued"

    def test_listed_reporter_starts(self, client: TestClient) -> None:
        body = created("ACC-2")
        body["user"]["accountId"] = "someone-else"
        assert post(client, body).json()["status"] == "queued"

    def test_automation_initiator_starts(self, client: TestClient) -> None:
        body = {"key": "ACC-3", "summary": "x", "initiator": {"accountId": "trusted-2"}}
        assert post(client, body).json()["status"] == "queued"

    @pytest.mark.parametrize("body", [
        {"key": "ACC-4", "summary": "x"},
        {"key": "ACC-4", "summary": "x", "initiator": "stranger"},
        {"key": "ACC-4", "summary": "x", "user": {"accountId": "stranger"}},
    ])
    def test_anyone_else_is_ignored(self, client: TestClient, body: dict[str, Any]) -> None:
        r = post(client, body)
        assert r.status_code == 202
        assert r.json() == {"status": "ignored",
                            "reason": "neither the actor nor the reporter is in ALLOWED_JIRA_ACCOUNTS"}
        assert runs(client, "ACC-4") == []


class TestAllProjects:
    def test_star_allows_any_project_and_is_warned_about(self, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="app.routes.jira"), \
                service(tmp_path, ALLOWED_PROJECTS="*") as tc:
            assert post(tc, {"key": "ANY-1", "summary": "x"}).json()["status"] == "queued"
        assert [r for r in caplog.records if r.getMessage() == "allowed_projects_all"]

    def test_unset_in_development_allows_all_with_a_warning(self, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="app.routes.jira"), service(tmp_path) as tc:
            assert post(tc, {"key": "ANY-2", "summary": "x"}).json()["status"] == "queued"
        assert [r for r in caplog.records if r.getMessage() == "allowed_projects_all"]

    def test_listed_projects_are_not_warned_about(self, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="app.routes.jira"), \
                service(tmp_path, ALLOWED_PROJECTS="PROJ"):
            pass
        assert not [r for r in caplog.records if r.getMessage() == "allowed_projects_all"]


def _nested(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    node = leaf
    for _ in range(depth):
        node = {"type": "blockquote", "content": [node]}
    return node


class TestHostileInputIsCapped:
    @pytest.fixture
    def client(self, capped_client: TestClient) -> TestClient:
        return capped_client

    def test_fields_are_capped_before_the_database(self, client: TestClient) -> None:
        body = {"key": "CAP-1", "summary": "s" * 10_000, "description": "d\n" * 100_000,
                "labels": [f"l{n}-" + "x" * 300 for n in range(500)]}
        assert post(client, body).json()["status"] == "queued"
        t = stored_ticket(client, "CAP-1")
        assert len(t["summary"]) == 500 and t["summary"].endswith(TRUNCATED_MARKER)
        assert len(t["description"]) <= 5000 and t["description"].endswith(TRUNCATED_MARKER)
        assert len(t["labels"]) == 50 and all(len(label) <= 255 for label in t["labels"])
        assert t["labels"][0].startswith("l0-")

    def test_small_fields_are_untouched(self, client: TestClient) -> None:
        assert post(client, {"key": "CAP-2", "summary": "short", "labels": ["a"],
                             "description": "plain"}).json()["status"] == "queued"
        t = stored_ticket(client, "CAP-2")
        assert (t["summary"], t["description"], t["labels"]) == ("short", "plain", ["a"])

    @pytest.mark.parametrize("adf", [
        # many tiny nodes
        {"type": "doc", "content": [{"type": "paragraph",
                                     "content": [{"type": "text", "text": "ab"}] * 25_000}]},
        # a deep quote around many lines (indentation amplification)
        {"type": "doc", "content": [_nested(38, {"type": "paragraph", "content": [
            {"type": "text", "text": "x"}, {"type": "hardBreak"}] * 8_000})]},
        # a wide and tall table (padding amplification)
        {"type": "doc", "content": [{"type": "table", "content": [
            {"type": "tableRow", "content": [{"type": "tableCell", "content": []}] * 8_000},
            *[{"type": "tableRow", "content": [{"type": "tableCell"}]}] * 8_000]}]},
        # a huge list start
        {"type": "doc", "content": [{"type": "orderedList", "attrs": {"order": 10**1000}, "content": [
            {"type": "listItem", "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "a"}, {"type": "hardBreak"}, {"type": "text", "text": "b"},
            ]}]}] * 5000}]},
    ], ids=["tiny_nodes", "deep_quote_lines", "table", "huge_order"])
    def test_hostile_adf_is_bounded(self, client: TestClient, adf: dict[str, Any], request: Any) -> None:
        key = f"CAP-{10 + request.node.callspec.indices['adf']}"
        r = post(client, {"key": key, "summary": "x", "description": adf})
        assert r.status_code == 202 and r.json()["status"] == "queued", r.text
        assert len(stored_ticket(client, key)["description"]) <= 5000

    def test_too_many_containers_is_413_before_decoding(self, client: TestClient) -> None:
        raw = b'{"key": "CAP-3", "x": [' + b"[]," * 150_000 + b"[]]}"
        assert len(raw) < 1_048_576
        assert_error(post(client, raw), 413, "payload_too_large")
        assert runs(client, "CAP-3") == []

    def test_json_nested_past_the_decoder_limit_is_400_not_500(self, client: TestClient) -> None:
        deep = b'{"type":"doc","content":[' * 20_000 + b"]}" * 20_000
        raw = b'{"key": "CAP-4", "description": ' + deep + b"}"
        assert_error(post(client, raw), 400, "invalid_json")
