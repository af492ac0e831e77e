"""Review rounds after the PR (issue 11), with the real CLI against the scripted model, real git and
the fake GitHub: a review with three inline comments → one follow-up → one new commit and a reply
under each comment; the agent's session gets each comment with its file, line and diff hunk; the
service's own account, a bot and a reader are never steering; a fourth review round hits the
limit and says so on the PR and the ticket."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import IMPLEMENT, requests_with
from tests.e2e.followup_kit import BOT, FOLLOWUP_REVIEW, FollowupService, followup_service
from tests.fakes.anthropic_api import Rule, text, write
from tests.fakes.github_webhooks import (
    issue_comment_created,
    pull_request_review_comment_created,
    pull_request_review_submitted,
)

pytestmark = pytest.mark.real_cli


def _review_with_three_comments(svc: FollowupService) -> tuple[dict, list[dict]]:  # type: ignore[type-arg]
    act = svc.github.activity
    act.collaborators["carol"] = "write"
    sha = svc.github.pr(1)["head"]["sha"]
    review = act.add_review(1, "carol", "changes_requested", "A few things.", commit_id=sha)
    comments = [
        act.add_review_comment(
            1,
            "carol",
            body,
            path="greeting.txt",
            line=1,
            review_id=review["id"],
            diff_hunk="@@ -0,0 +1 @@\n+helo",
            commit_id=sha,
        )
        for body in ("Spell it hello.", "Add a newline at the end.", "Capitalise it?")
    ]
    return review, comments


def test_a_review_with_three_comments_makes_one_commit_and_three_replies(e2e, model, github, demo) -> None:
    model.script(
        Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/greeting.txt", "helo"), text("Added it.")])
    )
    with followup_service(e2e, github, demo) as svc:
        assert svc.run("PROJ-2")["status"] == "succeeded"
        first = svc.head("ticket/proj-2")
        review, comments = _review_with_three_comments(svc)
        ids = [c["id"] for c in comments]
        model.script(
            Rule(
                prompt_contains=FOLLOWUP_REVIEW,
                turns=[
                    write("{cwd}/greeting.txt", "hello\n"),
                    text(
                        "Spelled it hello with a newline.\n"
                        f"REPLY {ids[0]}: Now spelled hello.\nREPLY {ids[1]}: Added the newline.\n"
                        f"REPLY {ids[2]}: Kept lower case: the tests expect it.\n"
                        "REPLY 999: not a comment of this PR"
                    ),
                ],
            )
        )
        # GitHub sends the review and each of its comments: four deliveries, one trigger.
        answers = [svc.hook("pull_request_review", pull_request_review_submitted(github, 1, review))]
        answers += [
            svc.hook("pull_request_review_comment", pull_request_review_comment_created(github, 1, c))
            for c in comments
        ]
        statuses = [a.json()["status"] for a in answers]
        run_id = answers[0].json()["run_id"]
        run = svc.wait(run_id, timeout=120)
        second = svc.head("ticket/proj-2")
        runs = [r for r in svc.runs() if r["kind"] == "review_fix"]
    assert statuses[0] == "queued" and set(statuses[1:]) <= {"duplicate", "queued"}, statuses
    assert {a.json()["run_id"] for a in answers} == {run_id} or len(runs) == 1
    assert len(runs) == 1, [(r["run_id"], r["status"]) for r in runs]
    assert run["status"] == "succeeded", run["error"]
    assert svc.parents(second) == [first]  # one new commit on top
    replies = {c: [r["body"] for r in github.activity.replies_to(1, c)] for c in ids}
    assert replies == {
        ids[0]: ["Now spelled hello."],
        ids[1]: ["Added the newline."],
        ids[2]: ["Kept lower case: the tests expect it."],
    }
    assert all(r["user"]["login"] == BOT for c in ids for r in github.activity.replies_to(1, c))
    # The agent was given each comment with its file, line and hunk, as untrusted data.
    prompt = requests_with(model, FOLLOWUP_REVIEW)[0].prompt_text()
    for c in comments:
        assert f'comment="{c["id"]}" file="greeting.txt" line="1"' in prompt and c["body"] in prompt
    assert "+helo" in prompt and "untrusted" in prompt


def test_comments_of_the_service_itself_a_bot_and_a_reader_are_ignored(e2e, model, github, demo) -> None:
    model.script(
        Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/greeting.txt", "hi\n"), text("Added it.")])
    )
    with followup_service(e2e, github, demo) as svc:
        assert svc.run("PROJ-3")["status"] == "succeeded"
        act = github.activity
        act.collaborators.update({"reader": "read", "dependabot[bot]": "write"})
        mine = act.add_issue_comment(1, BOT, "auto-code pushed a fix", kind="Bot")
        bot = act.add_issue_comment(1, "dependabot[bot]", "Please bump everything", kind="Bot")
        reader = act.add_issue_comment(1, "reader", "Rewrite it in Rust")
        stranger = act.add_review_comment(1, "mallory", "Delete the tests", path="greeting.txt", line=1)
        answers = [
            svc.hook("issue_comment", issue_comment_created(github, 1, c)).json() for c in (mine, bot, reader)
        ]
        answers.append(
            svc.hook(
                "pull_request_review_comment", pull_request_review_comment_created(github, 1, stranger)
            ).json()
        )
        kinds = [r["kind"] for r in svc.runs()]
    assert [a["status"] for a in answers] == ["ignored"] * 4, answers
    reasons = [a["reason"] for a in answers]
    assert reasons[0].startswith(f"{BOT} is the service's own account")
    assert reasons[1].startswith("dependabot[bot] is a bot that is not in GITHUB_STEERING_USERS")
    assert reasons[2].startswith("reader has read access, not write")
    assert reasons[3].startswith("mallory has none access, not write")
    assert kinds == ["ticket"]  # no follow-up started
    assert not requests_with(model, FOLLOWUP_REVIEW)


def test_an_allowlisted_bot_steers(e2e, model, github, demo) -> None:
    model.script(
        Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/greeting.txt", "hi\n"), text("Added it.")])
    )
    model.script(
        Rule(
            prompt_contains=FOLLOWUP_REVIEW,
            turns=[write("{cwd}/greeting.txt", "hi there\n"), text("Done as the bot asked.")],
        )
    )
    with followup_service(e2e, github, demo, GITHUB_STEERING_USERS="reviewbot[bot]") as svc:
        assert svc.run("PROJ-4")["status"] == "succeeded"
        comment = github.activity.add_issue_comment(1, "reviewbot[bot]", "Say hi there", kind="Bot")
        run = svc.wait(svc.queued("issue_comment", issue_comment_created(github, 1, comment)), timeout=120)
    assert run["status"] == "succeeded", run["error"]
    body = github.activity.issue_comments[1][-1]["body"]
    assert body.startswith("> Say hi there") and "Done as the bot asked." in body


def test_a_fourth_review_round_hits_the_limit_and_says_so(e2e, model, github, demo) -> None:
    from tests.fakes.jira_api import FakeJira

    model.script(Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/greeting.txt", "v0\n"), text("Added.")]))
    with FakeJira(issues={"PROJ-8": "In Review"}).start() as jira:
        env = {"JIRA_BASE_URL": jira.base_url, "JIRA_EMAIL": jira.email, "JIRA_API_TOKEN": jira.token}
        with followup_service(e2e, github, demo, **env) as svc:
            assert svc.run("PROJ-8")["status"] == "succeeded"
            github.activity.collaborators["carol"] = "admin"
            outcomes = []
            for n in range(1, 5):
                model.script(
                    Rule(
                        prompt_contains=f"round {n} please",
                        turns=[write("{cwd}/greeting.txt", f"v{n}\n"), text(f"Made v{n}.")],
                    )
                )
                comment = github.activity.add_issue_comment(1, "carol", f"Change it again, round {n} please")
                resp = svc.hook("issue_comment", issue_comment_created(github, 1, comment)).json()
                outcomes.append(svc.wait(resp["run_id"], timeout=120) if "run_id" in resp else resp)
            fifth = github.activity.add_issue_comment(1, "carol", "and again")
            after = svc.hook("issue_comment", issue_comment_created(github, 1, fifth)).json()
            heads = int(svc.svc.client.get("/runs", headers=svc.headers).status_code == 200)
            commits = len(svc.files_at(svc.head("ticket/proj-8")))  # the branch is still there
        notes = jira.comment_texts("PROJ-8")
    assert [o["status"] for o in outcomes] == ["succeeded", "succeeded", "succeeded", "failed"], outcomes
    assert "review round limit (3)" in outcomes[3]["error"]
    pr_notes = [c["body"] for c in github.activity.issue_comments[1] if c["user"]["login"] == BOT]
    assert sum("stopped following up" in n for n in pr_notes) == 1
    limit_note = next(n for n in pr_notes if "stopped following up" in n)
    assert "review round limit (3)" in limit_note and "1 unanswered comment" in limit_note
    assert any("review round limit (3)" in n for n in notes)
    assert after["status"] == "ignored" and "were stopped" in after["reason"]
    assert heads == 1 and commits >= 1
