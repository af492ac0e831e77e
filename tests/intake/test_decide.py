"""Trigger and ignore rules (DESIGN.md defaults)."""

from __future__ import annotations

import pytest

from app.intake.decide import event_ignore_reason, ticket_ignore_reason
from app.intake.payload import ChangeItem, Envelope, parse_ticket, read_envelope
from tests.intake.conftest import load_fixture, make_settings

OWN = "service-account-1"


def reason(name: str, own: str | None = None, **env: object) -> str | None:
    s = make_settings(**env)
    body = load_fixture(name)
    envelope = read_envelope(body)
    r = event_ignore_reason(envelope, s, own)
    if r is None:
        r = ticket_ignore_reason(parse_ticket(body, envelope), s)
    return r


class TestStarts:
    @pytest.mark.parametrize("name", ["automation_jira_format", "automation_format", "custom_minimal",
                                      "custom_issue_fields", "system_issue_created"])
    def test_start_by_default(self, name: str) -> None:
        assert reason(name) is None

    def test_status_trigger(self) -> None:
        assert reason("system_issue_updated_status", TRIGGER_STATUS="Ready for AI") is None
        assert reason("system_issue_updated_status", TRIGGER_STATUS="ready FOR ai") is None

    def test_label_trigger(self) -> None:
        assert reason("system_issue_updated_label", TRIGGER_LABEL="auto-code") is None

    def test_either_trigger_is_enough(self) -> None:
        both = {"TRIGGER_STATUS": "Ready for AI", "TRIGGER_LABEL": "auto-code"}
        assert reason("system_issue_updated_status", **both) is None
        assert reason("system_issue_updated_label", **both) is None


class TestIgnores:
    def test_comment_created(self) -> None:
        assert reason("system_comment_created") == "event comment_created does not start work"

    def test_issue_deleted(self) -> None:
        assert reason("system_issue_deleted") == "event jira:issue_deleted does not start work"

    def test_unknown_event_without_issue(self) -> None:
        env = Envelope(source="system_webhook", event="sprint_started")
        assert event_ignore_reason(env, make_settings(), None) == "event sprint_started does not start work"

    def test_updates_without_configured_trigger(self) -> None:
        r = reason("system_issue_updated_status")
        assert r is not None and "TRIGGER_STATUS or TRIGGER_LABEL" in r

    def test_non_matching_update(self) -> None:
        r = reason("system_issue_updated_summary", TRIGGER_STATUS="Ready for AI", TRIGGER_LABEL="auto-code")
        assert r == "update does not match the trigger (status -> Ready for AI or label auto-code added)"

    def test_status_moved_elsewhere(self) -> None:
        assert reason("system_issue_updated_status", TRIGGER_STATUS="Done") is not None

    def test_label_already_present_is_not_added(self) -> None:
        env = Envelope(source="system_webhook", event="jira:issue_updated",
                       changes=(ChangeItem("labels", "auto-code", "auto-code backend"),))
        assert event_ignore_reason(env, make_settings(TRIGGER_LABEL="auto-code"), None) is not None

    def test_label_removed_is_not_added(self) -> None:
        env = Envelope(source="system_webhook", event="jira:issue_updated",
                       changes=(ChangeItem("labels", "auto-code", ""),))
        assert event_ignore_reason(env, make_settings(TRIGGER_LABEL="auto-code"), None) is not None

    def test_label_substring_does_not_match(self) -> None:
        env = Envelope(source="system_webhook", event="jira:issue_updated",
                       changes=(ChangeItem("labels", "", "auto-code-later"),))
        assert event_ignore_reason(env, make_settings(TRIGGER_LABEL="auto-code"), None) is not None

    def test_own_account_actor(self) -> None:
        body = load_fixture("system_issue_created")
        own = body["user"]["accountId"]
        assert reason("system_issue_created", own=own) == "event caused by the service's own Jira account"

    def test_own_account_on_matching_update(self) -> None:
        body = load_fixture("system_issue_updated_status")
        own = body["user"]["accountId"]
        r = reason("system_issue_updated_status", own=own, TRIGGER_STATUS="Ready for AI")
        assert r == "event caused by the service's own Jira account"

    def test_own_account_in_automation_body(self) -> None:
        own = load_fixture("automation_jira_format")["user"]["accountId"]
        assert reason("automation_jira_format", own=own) is not None

    def test_other_account_is_not_ignored(self) -> None:
        assert reason("system_issue_created", own=OWN) is None


class TestAllowedProjects:
    def test_listed_project_starts(self) -> None:
        assert reason("system_issue_created", ALLOWED_PROJECTS="proj, SP") is None

    @pytest.mark.parametrize("name", ["system_issue_created", "automation_jira_format", "custom_minimal"])
    def test_other_projects_are_ignored(self, name: str) -> None:
        r = reason(name, ALLOWED_PROJECTS="OTHER")
        assert r is not None and r.endswith("is not in ALLOWED_PROJECTS")

    def test_limits_matching_updates_too(self) -> None:
        r = reason("system_issue_updated_status", ALLOWED_PROJECTS="OTHER", TRIGGER_STATUS="Ready for AI")
        assert r == "project PROJ is not in ALLOWED_PROJECTS"
