"""JiraIssueReader against the fake Jira REST v3: the ticket as Jira has it (ADF description and
comments as text through the one ADF rule, labels, components, the routing custom field), the
service's own comments left out, the caps applied, and Jira's refusals as JiraError."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import JiraError
from app.intake.limits import FieldLimits
from app.services.jira.issues import MAX_COMMENTS, JiraIssueReader
from tests.conftest import make_settings
from tests.fakes.jira_api import FakeJira

ADF = {"type": "doc", "version": 1, "content": [
    {"type": "paragraph", "content": [{"type": "text", "text": "The "}, {"type": "text", "text": "login",
                                                                         "marks": [{"type": "strong"}]},
                                      {"type": "text", "text": " page breaks."}]},
    {"type": "bulletList", "content": [{"type": "listItem", "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "on Safari"}]}]}]}]}


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(issues={}).start() as fake:
        yield fake


def reader(jira: FakeJira, tmp_path: Path, **limits: int) -> JiraIssueReader:
    settings = make_settings(tmp_path / "ws", JIRA_BASE_URL=jira.base_url, JIRA_EMAIL=jira.email,
                             JIRA_API_TOKEN=jira.token, JIRA_ACCOUNT_ID=jira.account_id)
    return JiraIssueReader(settings, limits=FieldLimits(**limits), max_attempts=1)


async def test_reads_the_ticket_as_jira_has_it(jira: FakeJira, tmp_path: Path) -> None:
    jira.set_issue("WEB-3", summary="Fix login", description=ADF, labels=["ux"],
                   components=[{"id": "10", "name": "Frontend"}], issuetype={"name": "Bug"},
                   customfield_10042={"value": "web", "id": "1"}, customfield_10001="not asked for")
    jira.add_comment_by("WEB-3", "Only on Safari 17.", "acc-ann", "Ann")
    jira.add_comment_by("WEB-3", "auto-code could not finish...", jira.account_id, "auto-code")
    jira.add_comment_by("WEB-3", "Also the logout button.", "acc-bob", "Bob")
    ticket = await reader(jira, tmp_path).read("WEB-3", ("customfield_10042",))
    assert ticket.key == "WEB-3" and ticket.summary == "Fix login" and ticket.issue_type == "Bug"
    assert ticket.description == "The **login** page breaks.\n\n- on Safari"  # ADF as text, never JSON
    assert ticket.labels == ["ux"] and ticket.components == ["Frontend"]
    assert ticket.fields == {"customfield_10042": "web"}  # only the routing fields asked for
    assert ticket.comments == ["Ann: Only on Safari 17.", "Bob: Also the logout button."]  # oldest first
    assert ticket.url == f"{jira.base_url}/browse/WEB-3" and ticket.source == "jira_api"
    issue_get = next(r for r in jira.requests if r.path == "/rest/api/3/issue/WEB-3")
    assert issue_get.query is not None and "customfield_10042" in issue_get.query["fields"].split(",")
    comments_get = next(r for r in jira.requests if r.path == "/rest/api/3/issue/WEB-3/comment")
    assert comments_get.query == {"orderBy": "-created", "maxResults": str(MAX_COMMENTS)}


async def test_caps_apply_as_for_a_delivery(jira: FakeJira, tmp_path: Path) -> None:
    jira.set_issue("WEB-4", summary="x" * 900, description="d" * 5000, labels=[f"l{i}" for i in range(80)])
    ticket = await reader(jira, tmp_path, max_description_chars=1000).read("WEB-4")
    assert len(ticket.summary) <= 500 and ticket.summary.endswith("[... truncated]")
    assert len(ticket.description) <= 1000 and ticket.description.endswith("[... truncated]")
    assert len(ticket.labels) == 50


async def test_unknown_issue_and_bad_credentials_are_jira_errors(jira: FakeJira, tmp_path: Path) -> None:
    with pytest.raises(JiraError) as missing:
        await reader(jira, tmp_path).read("WEB-404")
    assert missing.value.status == 404
    jira.set_issue("WEB-5", summary="s")
    old = reader(jira, tmp_path)
    jira.token = "rotated-token-0123456789"  # the service still has the old one
    with pytest.raises(JiraError) as refused:
        await old.read("WEB-5")
    assert refused.value.status == 401 and "jira-fake-api-token" not in refused.value.detail
