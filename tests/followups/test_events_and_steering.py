"""Classification of GitHub's payloads (app/followups/events.py, shapes from tests/fakes/
github_webhooks.py after octokit/webhooks) and the steering rules (app/followups/steering.py) with
an in-memory permission table: which events become work, and whose words steer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import GitHubError
from app.followups.events import Ignored, PrEvent, classify
from app.followups.steering import steer_refusal
from app.services.github.activity_base import Author
from tests.conftest import make_settings
from tests.fakes.github_activity import Job
from tests.fakes.github_api import FakeGitHub
from tests.fakes.github_webhooks import (
    check_run_completed,
    check_suite_completed,
    issue_comment_created,
    pull_request_closed,
    pull_request_review_comment_created,
    pull_request_review_submitted,
    workflow_run_completed,
)

SHA = "c" * 40


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(sha_of=lambda branch: SHA) as fake:
        fake.add_pr("ticket/proj-1")
        fake.add_pr("feature/someone-else")
        yield fake


def _one(found: list[PrEvent] | Ignored) -> PrEvent:
    assert isinstance(found, list) and len(found) == 1, found
    return found[0]


class TestCi:
    def test_a_failed_suite_run_or_workflow_is_one_trigger_per_commit(self, gh: FakeGitHub) -> None:
        suite = gh.activity.complete_ci(SHA, [Job("test", "failure")], branch="ticket/proj-1")
        run = gh.activity.runs[-1]
        events = [
            classify("check_suite", check_suite_completed(gh, suite, pr_number=1)),
            classify("check_run", check_run_completed(gh, run, pr_number=1)),
            classify("workflow_run", workflow_run_completed(gh, suite, pr_number=1)),
        ]
        triggers = {(_one(e).action, _one(e).number, _one(e).trigger) for e in events}
        assert triggers == {("ci", 1, f"ci:{SHA}")}

    def test_green_or_foreign_or_prless_ci_is_ignored_with_its_reason(self, gh: FakeGitHub) -> None:
        green = gh.activity.complete_ci(SHA, [Job("test", "success")], branch="ticket/proj-1")
        red = gh.activity.complete_ci(SHA, [Job("test", "failure")], branch="feature/someone-else")
        assert classify("check_suite", check_suite_completed(gh, green, pr_number=1)) == Ignored(
            reason="check_suite concluded success: nothing to fix"
        )
        assert classify("check_suite", check_suite_completed(gh, red, pr_number=2)) == Ignored(
            reason="check_suite failed on no pull request of an auto-code branch"
        )
        assert classify("check_suite", check_suite_completed(gh, red, pr_number=None)) == Ignored(
            reason="check_suite failed on no pull request of an auto-code branch"
        )
        requested = {**check_suite_completed(gh, red, pr_number=1), "action": "requested"}
        assert "only completed CI" in classify("check_suite", requested).reason  # type: ignore[union-attr]


class TestReviews:
    def test_changes_requested_and_commented_with_a_body_are_work(self, gh: FakeGitHub) -> None:
        for state, body in (("changes_requested", ""), ("commented", "Please rename x")):
            review = gh.activity.add_review(1, "carol", state, body)
            ev = _one(classify("pull_request_review", pull_request_review_submitted(gh, 1, review)))
            assert (ev.action, ev.trigger, ev.author) == (
                "review",
                f"review:{review['id']}",
                Author(login="carol"),
            )

    @pytest.mark.parametrize(
        "state,body,why",
        [
            ("approved", "LGTM", "review approved: nothing to change"),
            ("commented", "   ", "review comment without a body"),
            ("dismissed", "x", "review dismissed: nothing to change"),
        ],
    )
    def test_approvals_and_empty_reviews_are_ignored(
        self, gh: FakeGitHub, state: str, body: str, why: str
    ) -> None:
        review = gh.activity.add_review(1, "carol", state, body)
        found = classify("pull_request_review", pull_request_review_submitted(gh, 1, review))
        assert isinstance(found, Ignored) and found.reason.startswith(why)

    def test_the_comments_of_one_review_share_its_trigger(self, gh: FakeGitHub) -> None:
        review = gh.activity.add_review(1, "carol", "commented", "")
        comments = [
            gh.activity.add_review_comment(1, "carol", b, path="a.py", line=1, review_id=review["id"])
            for b in ("one", "two")
        ]
        lone = gh.activity.add_review_comment(1, "carol", "alone", path="a.py", line=2)
        triggers = [
            _one(
                classify("pull_request_review_comment", pull_request_review_comment_created(gh, 1, c))
            ).trigger
            for c in (*comments, lone)
        ]
        assert triggers == [f"review:{review['id']}"] * 2 + [f"comment:{lone['id']}"]

    def test_comments_on_issues_and_edits_are_ignored(self, gh: FakeGitHub) -> None:
        comment = gh.activity.add_issue_comment(1, "carol", "hi")
        payload = issue_comment_created(gh, 1, comment)
        on_pr = _one(classify("issue_comment", payload))
        assert (on_pr.number, on_pr.branch, on_pr.trigger) == (1, "", f"comment:{comment['id']}")
        del payload["issue"]["pull_request"]
        assert classify("issue_comment", payload) == Ignored(
            reason="a comment on an issue, not on a pull request"
        )
        edited = {**issue_comment_created(gh, 1, comment), "action": "edited"}
        assert classify("issue_comment", edited) == Ignored(
            reason="issue_comment edited: only new comments are acted on"
        )


def test_a_close_says_whether_it_merged(gh: FakeGitHub) -> None:
    gh.merge(1)
    assert _one(classify("pull_request", pull_request_closed(gh, 1))).merged is True
    opened = {**pull_request_closed(gh, 1), "action": "opened"}
    assert classify("pull_request", opened) == Ignored(reason="pull_request opened: only a close is acted on")


class Permissions:
    """The permission lookup of a PullActivity, from a table; `broken` makes it fail."""

    def __init__(self, table: dict[str, str], broken: bool = False) -> None:
        self.table, self.broken = table, broken
        self.asked: list[str] = []

    async def permission(self, login: str) -> str:
        self.asked.append(login)
        if self.broken:
            raise GitHubError("GitHub answered 502 while trying to read a permission", status=502)
        return self.table.get(login, "none")


class TestSteering:
    async def test_who_may_steer(self) -> None:
        settings = make_settings(Path("/tmp/unused"), GITHUB_STEERING_USERS="renovate[bot], outside-reviewer")
        perms = Permissions(
            {"writer": "write", "admin": "admin", "reader": "read", "dependabot[bot]": "admin"}
        )
        cases = {
            "Auto-Code-Bot": "is the service's own account",
            "writer": None,
            "admin": None,
            "reader": "has read access, not write",
            "stranger": "has none access, not write",
            "outside-reviewer": None,
        }
        for login, expect in cases.items():
            got = await steer_refusal(Author(login=login), "text", settings, perms, "auto-code-bot")  # type: ignore[arg-type]
            assert (got is None) if expect is None else (got is not None and expect in got), (login, got)
        bot = await steer_refusal(
            Author(login="dependabot[bot]", type="Bot"), "x", settings, perms, "auto-code-bot"
        )  # type: ignore[arg-type]
        listed_bot = await steer_refusal(
            Author(login="renovate[bot]", type="Bot"), "x", settings, perms, None
        )  # type: ignore[arg-type]
        assert (
            bot is not None and "not in GITHUB_STEERING_USERS" in bot
        )  # write access does not make a bot steer
        assert listed_bot is None
        assert "dependabot[bot]" not in perms.asked and "outside-reviewer" not in perms.asked

    async def test_a_mention_can_be_required_and_a_failed_lookup_refuses(self) -> None:
        settings = make_settings(Path("/tmp/unused"), GITHUB_REQUIRE_MENTION="true")
        perms = Permissions({"writer": "write"})
        silent = await steer_refusal(Author(login="writer"), "fix it", settings, perms, "auto-code-bot")  # type: ignore[arg-type]
        called = await steer_refusal(
            Author(login="writer"), "@auto-code-bot fix it", settings, perms, "auto-code-bot"
        )  # type: ignore[arg-type]
        lookalike = await steer_refusal(
            Author(login="writer"), "@auto-code-bot2 fix", settings, perms, "auto-code-bot"
        )  # type: ignore[arg-type]
        broken = await steer_refusal(
            Author(login="writer"),
            "@auto-code-bot x",
            settings,
            Permissions({}, broken=True),
            "auto-code-bot",
        )  # type: ignore[arg-type]
        assert silent is not None and "does not mention @auto-code-bot" in silent
        assert called is None and lookalike is not None
        assert broken is not None and "could not be read" in broken

    async def test_a_step_looks_each_author_up_once_and_retries_a_failed_lookup(self) -> None:
        settings = make_settings(Path("/tmp/unused"))
        perms = Permissions({"writer": "write", "reader": "read"})
        known: dict[str, str] = {}
        got = [
            await steer_refusal(Author(login=login), "x", settings, perms, None, known)  # type: ignore[arg-type]
            for login in ("writer", "reader", "Writer", "reader")
        ]
        assert got[0] is None and got[2] is None
        assert got[1] is not None and got[3] is not None and "has read access" in got[3]
        assert perms.asked == ["writer", "reader"]
        broken = Permissions({}, broken=True)
        for _ in range(2):
            refused = await steer_refusal(Author(login="other"), "x", settings, broken, None, known)  # type: ignore[arg-type]
            assert refused is not None and "could not be read" in refused
        assert broken.asked == ["other", "other"] and "other" not in known
