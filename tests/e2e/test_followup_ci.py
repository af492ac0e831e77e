"""CI fix rounds after the PR (issue 11), with the real CLI against the scripted model, real git and
the fake GitHub: a red check suite makes one follow-up that resumes the ticket's session, reads the
failing job's whole log from a file, pushes a new commit on top of the PR's branch (the log stays
out of it), comments on the PR, and the next green suite is ignored."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import IMPLEMENT, requests_with, session_of
from tests.e2e.followup_kit import FOLLOWUP_CI, followup_service
from tests.fakes.anthropic_api import Rule, read, text, write
from tests.fakes.github_activity import Job
from tests.fakes.github_webhooks import check_suite_completed

pytestmark = pytest.mark.real_cli

# A whole log, long enough that a tail would lose its first error (the one that matters).
LOG = (
    "##[group]Run pytest\nFAILED tests/test_greeting.py::test_hello - AssertionError: 'helo' != 'hello'\n"
    + "".join(f"noise line {i}\n" for i in range(3000))
    + "##[error]Process completed with exit code 1.\n"
)


def _script(model) -> None:  # type: ignore[no-untyped-def]
    model.script(
        Rule(
            prompt_contains=IMPLEMENT,
            turns=[write("{cwd}/greeting.txt", "helo\n"), text("Added greeting.txt.")],
        )
    )
    model.script(
        Rule(
            prompt_contains=FOLLOWUP_CI,
            turns=[
                read("{cwd}/.auto-code-ci/1-test.log"),
                write("{cwd}/greeting.txt", "hello\n"),
                text("Fixed the typo in greeting.txt that test_hello caught."),
            ],
        )
    )


def test_red_ci_makes_one_followup_with_a_new_commit_on_the_pr_then_green_is_ignored(
    e2e, model, github, demo
) -> None:
    _script(model)
    with followup_service(e2e, github, demo) as svc:
        opener = svc.run("PROJ-1")
        assert opener["status"] == "succeeded", opener["error"]
        first = svc.head("ticket/proj-1")
        suite = svc.red_ci(1, [Job("lint", "success", "ok"), Job("test", "failure", LOG)])
        run_id = svc.queued("check_suite", check_suite_completed(github, suite, pr_number=1))
        run = svc.wait(run_id, timeout=120)
        second = svc.head("ticket/proj-1")
        green = github.activity.complete_ci(
            second, [Job("lint", "success"), Job("test", "success")], branch="ticket/proj-1"
        )
        after = svc.hook("check_suite", check_suite_completed(github, green, pr_number=1))
        listing = svc.runs()
        figures = svc.outcomes()
    assert run["status"] == "succeeded", (run["error"], [s["name"] for s in run["steps"]])
    assert (run["kind"], run["pr_number"], run["parent_run_id"]) == ("ci_fix", 1, opener["run_id"])
    # A new commit on top of the pushed one: no rewrite of the PR's history; the log is not in it.
    assert second != first and svc.parents(second) == [first]
    assert not any(f.startswith(".auto-code-ci") for f in svc.files_at(second))
    assert len(github.prs) == 1  # the same PR
    # The agent read the COMPLETE log from its file, in the ticket's own session (resumed).
    fix = requests_with(model, FOLLOWUP_CI)
    assert fix and session_of(fix[0]) == session_of(requests_with(model, IMPLEMENT)[0])
    results = "\n".join(r for req in fix for r in req.tool_results())
    assert "FAILED tests/test_greeting.py::test_hello" in results and "noise line 2999" in results
    # The job was re-run once (flaky or broken?) before the fix; then one comment on the PR.
    assert len(github.activity.reruns) == 1
    comments = github.activity.issue_comments.get(1, [])
    assert len(comments) == 1 and "pushed a fix" in comments[0]["body"] and "test" in comments[0]["body"]
    assert after.status_code == 202 and after.json() == {
        "status": "ignored",
        "reason": "check_suite concluded success: nothing to fix",
    }
    kinds = sorted(r["kind"] for r in listing)
    assert kinds == ["ci_fix", "ticket"]
    (pr,) = figures["pull_requests"]
    assert (pr["state"], pr["ci_rounds"], pr["ci_fix_runs"]) == ("open", 1, 1)
    assert figures["first_push_ci_pass_rate"] == 0.0 and figures["merge_rate"] is None


def test_thirty_deliveries_of_one_red_suite_make_one_followup(e2e, model, github, demo) -> None:
    """The check suite, each of its check runs and the workflow run, redelivered: one run."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.fakes.github_webhooks import check_run_completed, workflow_run_completed

    _script(model)
    with followup_service(e2e, github, demo) as svc:
        assert svc.run("PROJ-5")["status"] == "succeeded"
        suite = svc.red_ci(1, [Job("test", "failure", LOG), Job("lint", "failure", "E501")])
        runs = [r for r in github.activity.runs if r["check_suite"]["id"] == suite["id"]]
        deliveries = (
            [("check_suite", check_suite_completed(github, suite, pr_number=1))] * 10
            + [("check_run", check_run_completed(github, r, pr_number=1)) for r in runs] * 5
            + [("workflow_run", workflow_run_completed(github, suite, pr_number=1))] * 10
        )
        assert len(deliveries) == 30
        guids = [f"5e0e7a3c-0000-4000-8000-{n:012d}" for n in range(30)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda d: svc.hook(*d[0], delivery=d[1]), zip(deliveries, guids, strict=True))
            )
        ids = {a.json().get("run_id") for a in answers}
        (run_id,) = ids
        run = svc.wait(run_id, timeout=120)
        # GitHub's "Redeliver" (same GUID) after the run ended: answered as before, starts nothing.
        redelivered = svc.hook(*deliveries[0], delivery=guids[0]).json()
        followups = [r for r in svc.runs() if r["kind"] == "ci_fix"]
    assert all(a.status_code == 202 for a in answers)
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses.count("queued") == 1 and statuses.count("duplicate") == 29, statuses
    assert [r["run_id"] for r in followups] == [run_id] and run["status"] == "succeeded", run["error"]
    assert redelivered["run_id"] == run_id and redelivered["status"] in ("queued", "duplicate")


def test_a_flaky_job_is_rerun_once_and_not_fixed(e2e, model, github, demo) -> None:
    _script(model)
    github.activity.rerun_outcome = lambda job, attempt: ("success", "passed on attempt 2\n")
    with followup_service(e2e, github, demo) as svc:
        assert svc.run("PROJ-6")["status"] == "succeeded"
        before = svc.head("ticket/proj-6")
        suite = svc.red_ci(1, [Job("test", "failure", "connection reset by peer\n")])
        run = svc.wait(
            svc.queued("check_suite", check_suite_completed(github, suite, pr_number=1)), timeout=120
        )
        after = svc.head("ticket/proj-6")
    assert run["status"] == "succeeded", run["error"]
    assert after == before  # no fix, no commit
    assert len(github.activity.reruns) == 1  # one re-run
    assert not requests_with(model, FOLLOWUP_CI)  # the agent was not asked
    detail = next(s for s in run["steps"] if s["name"] == "followup")["detail"]
    assert detail["flaky"] == ["test"] and detail["nothing"].startswith("flaky: test passed on one re-run")


def test_the_same_failure_after_a_fix_stops_on_stagnation_with_comments(e2e, model, github, demo) -> None:
    from tests.fakes.jira_api import FakeJira

    model.script(
        Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/greeting.txt", "helo\n"), text("Added.")])
    )
    model.script(
        Rule(
            prompt_contains=FOLLOWUP_CI, turns=[write("{cwd}/greeting.txt", "hallo\n"), text("Tried a fix.")]
        )
    )
    with FakeJira(issues={"PROJ-7": "In Review"}).start() as jira:
        env = {"JIRA_BASE_URL": jira.base_url, "JIRA_EMAIL": jira.email, "JIRA_API_TOKEN": jira.token}
        with followup_service(e2e, github, demo, **env) as svc:
            assert svc.run("PROJ-7")["status"] == "succeeded"
            first = svc.red_ci(1, [Job("test", "failure", LOG)])
            fixed = svc.wait(
                svc.queued("check_suite", check_suite_completed(github, first, pr_number=1)), timeout=120
            )
            head = svc.head("ticket/proj-7")
            again = svc.red_ci(1, [Job("test", "failure", LOG)])  # the same job fails on the fix
            stopped = svc.wait(
                svc.queued("check_suite", check_suite_completed(github, again, pr_number=1)), timeout=120
            )
            third = svc.red_ci(1, [Job("test", "failure", LOG)])
            later = svc.hook("check_suite", check_suite_completed(github, third, pr_number=1)).json()
            final_head = svc.head("ticket/proj-7")
        notes = jira.comment_texts("PROJ-7")
    assert fixed["status"] == "succeeded" and head != first["head_sha"]
    assert stopped["status"] == "failed" and "stagnation" in stopped["error"], stopped["error"]
    assert final_head == head  # no second fix was pushed
    pr_notes = [c["body"] for c in github.activity.issue_comments[1]]
    assert any(
        "stopped following up" in n and "stagnation" in n and "failing jobs test" in n for n in pr_notes
    )
    assert any("stopped following up" in n and "stagnation" in n for n in notes), notes
    assert later["status"] == "ignored" and "were stopped: stagnation" in later["reason"]
    assert len(requests_with(model, FOLLOWUP_CI)) >= 1 and github.activity.reruns  # one fix round only
    fixes = {session_of(r) for r in requests_with(model, FOLLOWUP_CI)}
    assert len(fixes) == 1


def test_the_prs_follow_up_budget_stops_the_loop(e2e, model, github, demo) -> None:
    model.script(
        Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/greeting.txt", "helo\n"), text("Added.")])
    )
    model.script(
        Rule(prompt_contains=FOLLOWUP_CI, turns=[write("{cwd}/greeting.txt", "hello\n"), text("Fixed.")])
    )
    with followup_service(e2e, github, demo, FOLLOWUP_MAX_COST_USD="0.000001") as svc:
        assert svc.run("PROJ-12")["status"] == "succeeded"
        first = svc.red_ci(1, [Job("test", "failure", LOG)])
        fixed = svc.wait(
            svc.queued("check_suite", check_suite_completed(github, first, pr_number=1)), timeout=120
        )
        second = svc.red_ci(
            1, [Job("lint", "failure", "E501 line too long\n")]
        )  # another failure: no stagnation
        stopped = svc.wait(
            svc.queued("check_suite", check_suite_completed(github, second, pr_number=1)), timeout=120
        )
        figures = svc.outcomes()
    assert fixed["status"] == "succeeded" and fixed["cost_usd"] > 0
    assert stopped["status"] == "failed" and "follow-up budget of $0.00 is spent" in stopped["error"]
    (pr,) = figures["pull_requests"]
    assert pr["stop_reason"].startswith("the pull request's follow-up budget") and pr["ci_rounds"] == 1
    notes = [c["body"] for c in github.activity.issue_comments[1]]
    assert any("stopped following up" in n and "failing jobs lint" in n for n in notes)


def test_without_the_transcript_a_fresh_session_gets_the_ticket_the_diff_and_the_trigger(
    e2e, model, github, demo
) -> None:
    import shutil

    from app.services.claude_code.client import run_state_dir

    _script(model)
    with followup_service(e2e, github, demo) as svc:
        opener = svc.run("PROJ-13", "Add a greeting file")
        assert opener["status"] == "succeeded"
        shutil.rmtree(run_state_dir(svc.settings.claude_config_dir, opener["run_id"]))  # e.g. another host
        suite = svc.red_ci(1, [Job("test", "failure", LOG)])
        run = svc.wait(
            svc.queued("check_suite", check_suite_completed(github, suite, pr_number=1)), timeout=120
        )
    assert run["status"] == "succeeded", run["error"]
    (first, *_) = requests_with(model, FOLLOWUP_CI)
    assert session_of(first) != session_of(requests_with(model, IMPLEMENT)[0])  # a new session
    prompt = first.prompt_text()
    assert "You are continuing the pull request for Jira ticket PROJ-13" in prompt
    assert "<summary>Add a greeting file</summary>" in prompt  # the ticket
    assert "<diff>" in prompt, prompt[prompt.find("continuing") :][:3000]
    diff = prompt[prompt.index("<diff>\n") : prompt.index("\n</diff>")]
    assert "greeting.txt" in diff and "1 file changed" in diff, diff  # the PR's diff so far
    assert ".auto-code-ci/1-test.log" in prompt  # the trigger, with the log's file
    implement = next(s for s in run["steps"] if s["name"] == "implement")
    assert implement["detail"]["resumed"] is False


def test_a_failed_round_pushes_nothing_and_says_so_on_the_pr(e2e, model, github, demo) -> None:
    from tests.fakes.anthropic_api import Turn

    model.script(
        Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/greeting.txt", "helo\n"), text("Added.")])
    )
    model.script(Rule(prompt_contains=FOLLOWUP_CI, turns=[Turn(status=500)]))  # the model is down
    with followup_service(e2e, github, demo) as svc:
        assert svc.run("PROJ-14")["status"] == "succeeded"
        before = svc.head("ticket/proj-14")
        suite = svc.red_ci(1, [Job("test", "failure", LOG)])
        run = svc.wait(
            svc.queued("check_suite", check_suite_completed(github, suite, pr_number=1)), timeout=120
        )
        after = svc.head("ticket/proj-14")
    assert run["status"] == "failed" and run["error"].startswith("implement: agent"), run["error"]
    assert after == before
    (note,) = [c["body"] for c in github.activity.issue_comments[1]]
    assert (
        note.startswith("auto-code could not address the failing CI in this round") and run["run_id"] in note
    )


def test_a_rerun_that_does_not_finish_within_the_wait_counts_as_failing(
    e2e, model, github, demo, monkeypatch
) -> None:
    """The wait's cap (RERUN_WAIT_SEC, 30 min) in small: the re-run stays in progress, the run looks
    once at the start and once after each pause (each look a recorded step), then fixes the job."""
    import sqlalchemy as sa

    from app.followups import ci_steps

    # Binary fractions, so the sum of the pauses meets the cap exactly (as 180 x 10 s meets 1800 s).
    monkeypatch.setattr(ci_steps, "RERUN_POLL_SEC", 0.0625)
    monkeypatch.setattr(ci_steps, "RERUN_WAIT_SEC", 0.25)
    github.activity.hold_reruns = True  # never finished by this test
    _script(model)
    with followup_service(e2e, github, demo) as svc:
        assert svc.run("PROJ-15")["status"] == "succeeded"
        suite = svc.red_ci(1, [Job("test", "failure", LOG)])
        run = svc.wait(
            svc.queued("check_suite", check_suite_completed(github, suite, pr_number=1)), timeout=120
        )
        engine = sa.create_engine(svc.settings.system_database_url)
        with engine.connect() as conn:
            recorded = conn.execute(
                sa.text("SELECT function_name FROM operation_outputs WHERE workflow_uuid = :w "
                        "ORDER BY function_id"),
                {"w": run["run_id"]},
            ).scalars().all()
        engine.dispose()
    assert run["status"] == "succeeded", run["error"]
    assert len(github.activity.reruns) == 1 and github.activity.held  # asked once, never finished
    checks = f"/commits/{suite['head_sha']}/check-runs"
    looks = [r for r in github.requests if r.method == "GET" and r.path.endswith(checks)]
    assert len(looks) == 1 + 5  # followup_ci's own, then 1 + 0.25 / 0.0625 checks
    ci = [n for n in recorded if n.startswith("FollowupSteps.followup_ci")]
    assert ci == ["FollowupSteps.followup_ci", *["FollowupSteps.followup_ci_check"] * 5,
                  "FollowupSteps.followup_ci_result"], recorded
    assert requests_with(model, FOLLOWUP_CI)  # not flaky: the agent was asked to fix it
    detail = next(s for s in run["steps"] if s["name"] == "followup")["detail"]
    assert (detail["failing"], detail["rerun"], detail["flaky"]) == (["test"], ["test"], []), detail
