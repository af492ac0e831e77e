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
                                      "custom_issue_fields"])
    def test_start_by_default(self, name: str) -> None:
        assert reason(name) is None

    def test_created_issue_carrying_the_trigger_label(self) -> None:
        # the fixture's issue has labels ["frontend", "auto-code"] and status "To Do"
        assert reason("system_issue_created", TRIGGER_LABEL="AUTO-CODE") is None

    def test_created_issue_in_the_trigger_status(self) -> None:
        assert reason("system_issue_created", TRIGGER_STATUS="to do") is None

    def test_created_issue_with_the_opt_in(self) -> None:
        assert reason("system_issue_created", START_ON_ISSUE_CREATED="true") is None

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
        assert reason("system_issue_created", own=OWN, TRIGGER_LABEL="auto-code") is None

    def test_created_without_any_trigger_or_opt_in(self) -> None:
        r = reason("system_issue_created")
        assert r is not None and r.startswith("issue creation does not start work")
        for how in ("TRIGGER_LABEL", "TRIGGER_STATUS", "START_ON_ISSUE_CREATED=true"):
            assert how in r

    def test_created_issue_without_the_trigger(self) -> None:
        r = reason("system_issue_created", TRIGGER_LABEL="ai-please", TRIGGER_STATUS="Ready for AI")
        assert r == "created issue does not carry the trigger (label ai-please or status Ready for AI)"

    def test_label_substring_on_a_created_issue_does_not_match(self) -> None:
        assert reason("system_issue_created", TRIGGER_LABEL="auto") is not None


class TestAllowedProjects:
    def test_listed_project_starts(self) -> None:
        assert reason("system_issue_created", ALLOWED_PROJECTS="proj, SP", TRIGGER_LABEL="auto-code") is None

    @pytest.mark.parametrize("name", ["system_issue_created", "automation_jira_format", "custom_minimal"])
    def test_other_projects_are_ignored(self, name: str) -> None:
        r = reason(name, ALLOWED_PROJECTS="OTHER", START_ON_ISSUE_CREATED="true")
        assert r is not None and r.endswith("is not in ALLOWED_PROJECTS")

    @pytest.mark.parametrize("value", ["*", "*,OTHER"])
    def test_star_allows_every_project(self, value: str) -> None:
        assert reason("custom_minimal", ALLOWED_PROJECTS=value) is None

    def test_limits_matching_updates_too(self) -> None:
        r = reason("system_issue_updated_status", ALLOWED_PROJECTS="OTHER", TRIGGER_STATUS="Ready for AI")
        assert r == "project PROJ is not in ALLOWED_PROJECTS"


REPORTER = "5b10a2844c20165700ede21g"  # system_issue_created: actor and reporter


class TestAllowedJiraAccounts:
    def test_actor_on_the_list_starts(self) -> None:
        body = load_fixture("system_issue_created")
        body["issue"]["fields"]["reporter"]["accountId"] = "someone-else"
        s = make_settings(ALLOWED_JIRA_ACCOUNTS=f"x-1, {REPORTER}", START_ON_ISSUE_CREATED="true")
        assert event_ignore_reason(read_envelope(body), s, None) is None

    def test_reporter_on_the_list_starts(self) -> None:
        body = load_fixture("system_issue_created")
        body["user"]["accountId"] = "automation-bot"
        s = make_settings(ALLOWED_JIRA_ACCOUNTS=REPORTER, START_ON_ISSUE_CREATED="true")
        assert event_ignore_reason(read_envelope(body), s, None) is None

    @pytest.mark.parametrize("name", ["system_issue_created", "automation_jira_format", "custom_minimal"])
    def test_anyone_else_is_ignored(self, name: str) -> None:
        r = reason(name, ALLOWED_JIRA_ACCOUNTS="trusted-1", START_ON_ISSUE_CREATED="true")
        assert r == "neither the actor nor the reporter is in ALLOWED_JIRA_ACCOUNTS"

    @pytest.mark.parametrize("initiator", [{"accountId": "trusted-1"}, "trusted-1"])
    def test_automation_initiator_counts_as_the_actor(self, initiator: object) -> None:
        body = {**load_fixture("automation_jira_format"), "initiator": initiator}
        s = make_settings(ALLOWED_JIRA_ACCOUNTS="trusted-1")
        assert event_ignore_reason(read_envelope(body), s, None) is None

    def test_server_names_do_not_count_as_account_ids(self) -> None:
        body = {"user": {"name": "trusted-1", "key": "trusted-1"}, "issue": {"key": "PROJ-1"}}
        s = make_settings(ALLOWED_JIRA_ACCOUNTS="trusted-1")
        assert event_ignore_reason(read_envelope(body), s, None) is not None

    def test_unset_allows_anyone(self) -> None:
        assert reason("automation_jira_format") is None
