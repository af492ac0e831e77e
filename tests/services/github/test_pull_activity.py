"""GitHubPullActivity against the fake GitHub (tests/fakes/github_activity.py): check runs, the
job log behind its documented 302, re-runs, reviews and threads, replies, comments, permissions —
and the fake answers in GitHub's shapes (ETags / 304, 404 for a stranger's permission)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.config import Settings
from app.errors import GitHubError
from app.services.github.activity import github_activity
from tests.fakes.github_activity import Job
from tests.fakes.github_api import FakeGitHub

TOKEN = "ghp_activity_token_0123456789abcdef"


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN, sha_of=lambda branch: "a" * 40).start() as fake:
        fake.add_pr("ticket/proj-1")
        yield fake


def _activity(gh: FakeGitHub):  # type: ignore[no-untyped-def]
    settings = Settings(
        _env_file=None,
        GH_TOKEN=TOKEN,
        GITHUB_API_URL=gh.base_url,  # type: ignore[call-arg]
        GITHUB_REPOSITORY=gh.slug,
        WORKSPACE_DIR="/tmp/unused",
    )

    async def no_sleep(_: float) -> None:
        return None

    return github_activity(settings, sleep=no_sleep)


async def test_failed_jobs_and_their_whole_logs(gh: FakeGitHub) -> None:
    log = "".join(f"line {i}: compiling\n" for i in range(5000)) + "FAILED tests/test_x.py::test_y\n"
    gh.activity.complete_ci("a" * 40, [Job("lint", "success", "ok"), Job("test", "failure", log)])
    api = _activity(gh)
    jobs = await api.check_jobs("a" * 40)
    failed = [j for j in jobs if j.failed]
    assert [(j.name, j.is_actions) for j in jobs] == [("lint", True), ("test", True)]
    assert [j.name for j in failed] == ["test"]
    got = await api.job_log(failed[0])
    await api.aclose()
    assert got == log  # complete, not a tail
    downloads = [r for r in gh.requests if r.path.startswith("/_logs/")]
    assert len(downloads) == 1 and "authorization" not in downloads[0].headers  # no token to the download


async def test_rerun_makes_a_new_attempt(gh: FakeGitHub) -> None:
    gh.activity.complete_ci("a" * 40, [Job("test", "failure", "flaky")])
    gh.activity.rerun_outcome = lambda run, attempt: ("success", "passed on attempt 2")
    api = _activity(gh)
    (job,) = await api.check_jobs("a" * 40)
    await api.rerun_job(job)
    (again,) = await api.check_jobs("a" * 40)
    await api.aclose()
    assert gh.activity.reruns == [job.id] and again.attempt == 2 and not again.failed


async def test_reviews_threads_replies_comments_permissions(gh: FakeGitHub) -> None:
    act = gh.activity
    review = act.add_review(1, "alice", "changes_requested", "Please fix")
    first = act.add_review_comment(
        1, "alice", "rename x", path="a.py", line=3, diff_hunk="@@ -1 +1 @@\n+x = 1", review_id=review["id"]
    )
    act.add_review_comment(1, "bob", "agreed", path="a.py", line=3, in_reply_to=first["id"])
    act.add_issue_comment(1, "carol", "also update the docs")
    act.collaborators.update({"alice": "write", "bob": "read"})
    api = _activity(gh)
    reviews = await api.reviews(1)
    comments = await api.review_comments(1)
    talk = await api.issue_comments(1)
    await api.reply(1, first["id"], "Renamed x to count.")
    await api.comment(1, "Done.")
    perms = [await api.permission(u) for u in ("alice", "bob", "mallory")]
    with pytest.raises(GitHubError) as info:
        await api.reply(1, 424242, "nobody")
    await api.aclose()
    assert [(r.author.login, r.state) for r in reviews] == [("alice", "CHANGES_REQUESTED")]
    assert [(c.path, c.line, c.in_reply_to) for c in comments] == [
        ("a.py", 3, None),
        ("a.py", 3, first["id"]),
    ]
    assert comments[0].diff_hunk.startswith("@@") and comments[0].review_id == review["id"]
    assert [c.body for c in talk] == ["also update the docs"]
    assert [r["body"] for r in act.replies_to(1, first["id"]) if r["user"]["type"] == "Bot"] == [
        "Renamed x to count."
    ]
    assert act.issue_comments[1][-1]["body"] == "Done."
    assert perms == ["write", "read", "none"]
    assert info.value.status == 404 and "comment is gone" in info.value.detail


async def test_pull_state_and_merge(gh: FakeGitHub) -> None:
    api = _activity(gh)
    before = await api.pull(1)
    gh.merge(1)
    after = await api.pull(1)
    await api.aclose()
    assert (before.state, before.merged, before.head_sha) == ("open", False, "a" * 40)
    assert (after.state, after.merged) == ("closed", True)


def test_the_fake_answers_conditional_requests(gh: FakeGitHub) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{gh.base_url}/repos/{gh.slug}/pulls/1/comments"
    first = httpx.get(url, headers=headers)
    again = httpx.get(url, headers={**headers, "If-None-Match": first.headers["etag"]})
    gh.activity.add_review_comment(1, "alice", "new", path="a.py", line=1)
    changed = httpx.get(url, headers={**headers, "If-None-Match": first.headers["etag"]})
    assert first.status_code == 200 and again.status_code == 304 and again.content == b""
    assert changed.status_code == 200 and changed.json()[0]["body"] == "new"
