"""Every real delivery shape parses into the right Envelope and Ticket; bad shapes are 400/422."""

from __future__ import annotations

import json

import pytest

from app.errors import BadRequest, Unprocessable
from app.intake.payload import ChangeItem, parse_json, parse_ticket, read_envelope
from app.models import Ticket
from tests.intake.conftest import load_fixture


def ticket_of(body: dict, **kw: object) -> Ticket:
    return parse_ticket(body, read_envelope(body), **kw)  # type: ignore[arg-type]


class TestSystemWebhook:
    def test_issue_created_with_wiki_description(self) -> None:
        body = load_fixture("system_issue_created")
        env = read_envelope(body)
        assert env.source == "system_webhook"
        assert env.event == "jira:issue_created"
        assert env.event_type == "issue_created"
        assert env.actor_ids == {"5b10a2844c20165700ede21g"}
        t = parse_ticket(body, env)
        assert t.key == "PROJ-42"
        assert t.summary == "Add a dark mode toggle to the settings page"
        assert t.description.startswith("h2. Goal\nUsers want a *dark mode*.")  # wiki text kept as is
        assert t.issue_type == "Task"
        assert t.labels == ["frontend", "auto-code"]
        assert t.url == "https://acme.atlassian.net/browse/PROJ-42"
        assert t.source == "system_webhook"

    def test_adf_description_becomes_text(self) -> None:
        t = ticket_of(load_fixture("system_issue_created_adf"))
        assert t.description == (
            "The banner shows **yesterday**.\n\n- open /login\n- look at the top\n\n"
            "```ts\nconst when = new Date();\n```"
        )
        assert t.url == "https://acme.atlassian.net/browse/PROJ-43"
        assert t.issue_type == "Bug"

    def test_null_description_is_empty(self) -> None:
        t = ticket_of(load_fixture("system_issue_updated_status"))
        assert t.description == ""

    def test_missing_description_is_empty(self) -> None:
        t = ticket_of(load_fixture("system_issue_updated_label"))
        assert t.description == ""

    def test_changelog_items(self) -> None:
        env = read_envelope(load_fixture("system_issue_updated_label"))
        assert env.changes == (ChangeItem("labels", "backend", "backend auto-code"),)
        env = read_envelope(load_fixture("system_issue_updated_status"))
        assert env.changes == (ChangeItem("status", "To Do", "Ready for AI"),)

    def test_malformed_changelog_is_tolerated(self) -> None:
        body = load_fixture("system_issue_updated_status")
        body["changelog"] = {"items": [None, 3, {"field": 7}, {"fieldId": "status", "toString": None}]}
        assert read_envelope(body).changes == (ChangeItem("status", "", ""),)
        body["changelog"] = "nope"
        assert read_envelope(body).changes == ()

    def test_comment_event_without_issue_still_has_an_envelope(self) -> None:
        env = read_envelope({"webhookEvent": "comment_created", "comment": {"body": "x"}})
        assert env.event == "comment_created"

    def test_server_context_path_is_kept_in_url(self) -> None:
        body = load_fixture("system_issue_created")
        body["issue"]["self"] = "https://jira.corp.example/jira/rest/api/2/issue/10042"
        assert ticket_of(body).url == "https://jira.corp.example/jira/browse/PROJ-42"


class TestAutomation:
    def test_jira_format_with_numeric_ids_and_epoch_dates(self) -> None:
        body = load_fixture("automation_jira_format")
        env = read_envelope(body)
        assert env.source == "automation"
        assert env.event is None
        assert env.changes == ()  # the issue's REST changelog is not a webhook changelog
        assert "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077" in env.actor_ids
        t = parse_ticket(body, env)
        assert t.key == "SP-53"
        assert t.summary == "Export the report as CSV"
        assert t.description.startswith("The monthly report needs a *CSV* export button.")
        assert t.issue_type == "Service request"
        assert t.labels == ["auto-code"]
        assert t.url == "https://acme.atlassian.net/browse/SP-53"
        assert t.source == "automation"

    def test_automation_format_issue_at_top_level(self) -> None:
        t = ticket_of(load_fixture("automation_format"))
        assert (t.key, t.summary, t.description, t.issue_type, t.source) == (
            "SP-54", "Crash when the cart is empty", "", "Bug", "automation"
        )
        assert t.url == "https://acme.atlassian.net/browse/SP-54"


class TestCustomBody:
    def test_minimal_flat_body(self) -> None:
        t = ticket_of(load_fixture("custom_minimal"))
        assert (t.key, t.summary, t.description, t.source) == (
            "DEMO-7", "Fix the typo in README", "It says 'teh' instead of 'the'.", "custom"
        )
        assert t.url is None

    def test_issue_with_fields(self) -> None:
        t = ticket_of(load_fixture("custom_issue_fields"))
        assert (t.key, t.summary, t.labels, t.source) == ("DEMO-8", "Bump the timeout", ["ops"], "custom")

    def test_issue_without_fields_reads_flat_fields(self) -> None:
        t = ticket_of({"issue": {"key": "DEMO-9", "summary": "s", "description": "d"}})
        assert (t.summary, t.description) == ("s", "d")

    def test_key_only(self) -> None:
        t = ticket_of({"key": "DEMO-10"})
        assert (t.summary, t.description, t.labels) == ("", "", [])

    def test_adf_description_in_custom_body(self) -> None:
        adf = {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
            {"type": "text", "text": "hello"}]}]}
        assert ticket_of({"key": "DEMO-11", "description": adf}).description == "hello"

    def test_url_falls_back_to_jira_base_url(self) -> None:
        t = ticket_of({"key": "DEMO-12"}, jira_base_url="https://acme.atlassian.net/")
        assert t.url == "https://acme.atlassian.net/browse/DEMO-12"

    @pytest.mark.parametrize("self_url", ["javascript:alert(1)//rest/api/2/1", "file:///rest/api/2/1",
                                          "https://ev il/rest/api/2/1", "http://[::1/rest/api/2/1"])
    def test_untrustworthy_self_links_give_no_url(self, self_url: str) -> None:
        assert ticket_of({"key": "DEMO-13", "self": self_url, "fields": {}}).url is None


class TestBadInput:
    @pytest.mark.parametrize("raw", [b"", b"   ", b"{", b"not json", b"{'key': 'A-1'}", b"\xff\xfe\x00",
                                     b"[" * 100_000, b"1" * 5000])
    def test_not_json_is_400(self, raw: bytes) -> None:
        with pytest.raises(BadRequest) as info:
            parse_json(raw)
        assert info.value.code == "invalid_json"

    @pytest.mark.parametrize("raw", [b"[]", b'[{"key": "PROJ-1"}]', b'"PROJ-1"', b"42", b"null", b"true"])
    def test_json_that_is_not_an_object_is_422(self, raw: bytes) -> None:
        with pytest.raises(Unprocessable):
            parse_json(raw)

    @pytest.mark.parametrize(
        "body",
        [
            {"summary": "no key"},
            {"key": 42},
            {"key": None},
            {"key": ["PROJ-1"]},
            {"key": "PROJ-1", "summary": 3},
            {"key": "PROJ-1", "summary": {"text": "x"}},
            {"key": "PROJ-1", "description": 5},
            {"key": "PROJ-1", "description": ["a"]},
            {"key": "PROJ-1", "description": {"no": "type"}},
            {"key": "PROJ-1", "labels": "auto-code"},
            {"key": "PROJ-1", "labels": [1]},
            {"issue": "PROJ-1"},
            {"issue": {"key": "PROJ-1", "fields": []}},
            {"issue": {"fields": {"summary": "x"}}},
            {"webhookEvent": 5, "issue": {"key": "PROJ-1"}},
        ],
    )
    def test_wrong_shape_or_types_are_422(self, body: dict) -> None:
        with pytest.raises(Unprocessable):
            ticket_of(body)

    def test_bad_key_inside_issue_is_400(self) -> None:
        body = load_fixture("system_issue_created")
        body["issue"]["key"] = "PROJ-1;rm -rf ~"
        with pytest.raises(BadRequest) as info:
            ticket_of(body)
        assert info.value.code == "invalid_key"

    def test_null_fields_object_is_tolerated(self) -> None:
        assert ticket_of({"issue": {"key": "PROJ-1", "fields": None}}).summary == ""

    def test_body_roundtrips_as_bytes(self) -> None:
        body = load_fixture("custom_minimal")
        assert parse_json(json.dumps(body).encode()) == body
