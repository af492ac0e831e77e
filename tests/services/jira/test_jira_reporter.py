"""JiraRestReporter against the local fake Jira; RecordingJiraReporter; the factory; ADF."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.errors import ConfigError, JiraError
from app.services.jira import (
    JiraRestReporter,
    RecordingJiraReporter,
    adf_text,
    build_jira_reporter,
    to_adf,
)
from tests.fakes.jira_api import FakeJira

PR_URL = "https://github.com/acme/widgets/pull/7"


@pytest.fixture
def jira() -> Iterator[FakeJira]:
    with FakeJira(issues={"PROJ-1": "To Do", "PROJ-2": "In Progress"}).start() as fake:
        yield fake


def settings_for(jira: FakeJira, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "JIRA_BASE_URL": jira.base_url + "/",
        "JIRA_EMAIL": jira.email,
        "JIRA_API_TOKEN": jira.token,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def reporter(jira: FakeJira, sleeps: Sleeps | None = None, **overrides: object) -> JiraRestReporter:
    return JiraRestReporter(settings_for(jira, **overrides), sleep=sleeps or Sleeps(), backoff_base_sec=0.25)


class TestRestReporter:
    async def test_myself_returns_the_account_id(self, jira: FakeJira) -> None:
        client = reporter(jira)
        assert await client.myself() == jira.account_id
        assert await client.myself() == jira.account_id
        await client.aclose()
        assert len(jira.requests) == 1  # learned once, then cached

    async def test_myself_prefers_configured_account_and_is_none_when_refused(self, jira: FakeJira) -> None:
        configured = reporter(jira, JIRA_ACCOUNT_ID="acc-configured")
        assert await configured.myself() == "acc-configured"
        refused = reporter(jira, JIRA_API_TOKEN="wrong-token-value-xyz")
        assert await refused.myself() is None
        await configured.aclose()
        await refused.aclose()

    async def test_comment_is_sent_as_adf_with_a_clickable_link(self, jira: FakeJira) -> None:
        client = reporter(jira)
        await client.comment("PROJ-1", f"auto-code opened a pull request:\n{PR_URL}\n\nTurns: 4")
        await client.aclose()
        [body] = jira.comments["PROJ-1"]
        assert body["type"] == "doc" and body["version"] == 1
        assert jira.comment_texts("PROJ-1") == [f"auto-code opened a pull request:\n{PR_URL}\n\nTurns: 4"]
        links = [n for p in body["content"] for n in p["content"] if n.get("marks")]
        assert links[0]["marks"][0]["attrs"]["href"] == PR_URL

    async def test_remote_link_is_idempotent_on_url(self, jira: FakeJira) -> None:
        client = reporter(jira)
        await client.link_pull_request("PROJ-1", PR_URL, "PR #7")
        await client.link_pull_request("PROJ-1", PR_URL, "PR #7 (updated)")
        await client.aclose()
        [link] = jira.links["PROJ-1"].values()
        assert link["object"] == {"url": PR_URL, "title": "PR #7 (updated)"}

    async def test_transition_by_name_or_target_status(self, jira: FakeJira) -> None:
        client = reporter(jira)
        assert await client.transition("PROJ-1", "ready for review") is True
        assert jira.issues["PROJ-1"] == "In Review"
        assert await client.transition("PROJ-2", "In Progress") is False  # already there: not offered
        assert await client.transition("PROJ-2", "Closed") is False
        assert await client.transition("PROJ-2", "done") is True
        await client.aclose()
        assert jira.issues["PROJ-2"] == "Done"

    async def test_unknown_issue_is_a_404_naming_the_issue(self, jira: FakeJira) -> None:
        client = reporter(jira)
        with pytest.raises(JiraError) as info:
            await client.comment("NOPE-9", "hello")
        await client.aclose()
        assert info.value.status == 404
        assert "NOPE-9" in info.value.detail and "Issue does not exist" in info.value.detail

    async def test_bad_credentials_are_a_clear_401_without_the_token(self, jira: FakeJira) -> None:
        client = reporter(jira, JIRA_API_TOKEN="wrong-token-value-xyz")
        with pytest.raises(JiraError) as info:
            await client.link_pull_request("PROJ-1", PR_URL, "PR")
        await client.aclose()
        assert info.value.status == 401 and "JIRA_API_TOKEN" in info.value.detail
        assert "wrong-token-value-xyz" not in str(info.value)

    async def test_an_invalid_key_never_reaches_a_url(self, jira: FakeJira) -> None:
        client = reporter(jira)
        with pytest.raises(JiraError, match="invalid issue key"):
            await client.comment("PROJ-1/../../myself", "x")
        await client.aclose()
        assert jira.requests == []

    async def test_429_and_5xx_are_retried_honouring_retry_after(self, jira: FakeJira) -> None:
        jira.inject(429, headers={"Retry-After": "2"}, method="POST")
        jira.inject(503, method="POST")
        sleeps = Sleeps()
        client = reporter(jira, sleeps)
        await client.comment("PROJ-1", "after a storm")
        await client.aclose()
        assert sleeps.calls == [2.0, 0.5]
        assert jira.comment_texts("PROJ-1") == ["after a storm"]

    async def test_persistent_5xx_ends_in_a_jira_error(self, jira: FakeJira) -> None:
        jira.inject(500, times=9, body={"errorMessages": ["Internal server error"]})
        client = reporter(jira, Sleeps())
        with pytest.raises(JiraError) as info:
            await client.transition("PROJ-1", "Done")
        await client.aclose()
        assert info.value.status == 500 and "Internal server error" in info.value.detail
        assert len(jira.requests) == 3

    async def test_the_token_never_reaches_logs(
        self, jira: FakeJira, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        jira.inject(502, method="POST")
        client = reporter(jira)
        await client.comment("PROJ-1", "hello")
        await client.transition("PROJ-1", "Nope")
        await client.aclose()
        bad = reporter(jira, JIRA_API_TOKEN="another-secret-token-123")
        assert await bad.myself() is None
        await bad.aclose()
        events = {r.getMessage() for r in caplog.records}
        assert {"jira_retry", "jira_commented", "jira_myself_failed"} <= events
        for record in caplog.records:
            assert jira.token not in str(record.__dict__)
            assert "another-secret-token-123" not in str(record.__dict__)

    def test_needs_all_three_settings(self, jira: FakeJira) -> None:
        with pytest.raises(ConfigError, match="JIRA_API_TOKEN"):
            JiraRestReporter(settings_for(jira, JIRA_API_TOKEN=None))


class TestRecordingReporter:
    async def test_records_comments_links_and_transitions(self) -> None:
        rec = RecordingJiraReporter(account_id="me", available_transitions={"Done"})
        assert await rec.myself() == "me"
        await rec.comment("PROJ-1", "opened " + PR_URL)
        await rec.link_pull_request("PROJ-1", PR_URL, "PR #7")
        await rec.link_pull_request("PROJ-1", PR_URL, "PR #7 again")
        assert await rec.transition("PROJ-1", "done") is True
        assert await rec.transition("PROJ-1", "Reopen") is False
        assert rec.comments_for("PROJ-1") == ["opened " + PR_URL]
        assert [(link.url, link.title) for link in rec.links] == [(PR_URL, "PR #7 again")]
        assert [t.name for t in rec.transitions] == ["done"]

    async def test_records_are_bounded_and_faults_can_be_injected(self) -> None:
        rec = RecordingJiraReporter(maxlen=3)
        for i in range(5):
            await rec.comment("PROJ-1", f"c{i}")
        assert rec.comments_for("PROJ-1") == ["c2", "c3", "c4"]
        rec.fail_with = JiraError("jira down", status=503)
        with pytest.raises(JiraError):
            await rec.comment("PROJ-1", "x")
        with pytest.raises(JiraError):
            await RecordingJiraReporter().comment("bad key", "x")


class TestFactory:
    def test_rest_when_configured_else_recording(self, jira: FakeJira, tmp_path: Path) -> None:
        on = settings_for(jira)
        off = Settings(_env_file=None, WORKSPACE_DIR=str(tmp_path))  # type: ignore[call-arg]
        assert isinstance(build_jira_reporter(on), JiraRestReporter)
        assert build_jira_reporter(on) is not build_jira_reporter(on)  # no cache: one per call
        assert isinstance(build_jira_reporter(off), RecordingJiraReporter)


def test_adf_round_trips_paragraphs_breaks_and_links() -> None:
    text = "line one\nline two see https://x.example/a?b=1.\n\n\nsecond paragraph"
    doc = to_adf(text)
    assert [p["type"] for p in doc["content"]] == ["paragraph", "paragraph"]
    assert adf_text(doc).strip() == "line one\nline two see https://x.example/a?b=1.\n\nsecond paragraph"
    hrefs = [n["marks"][0]["attrs"]["href"] for n in doc["content"][0]["content"] if n.get("marks")]
    assert hrefs == ["https://x.example/a?b=1"]
    assert to_adf("")["content"] == [{"type": "paragraph", "content": []}]
