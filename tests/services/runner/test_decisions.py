"""The pipeline's decisions on the bench (bench.py: no DBOS, in-memory fakes, milliseconds each):
gate rounds, stagnation, round limit, no changes, dry run, every failure path, what never changes
the outcome, and where turns and cost come from. Replay after a crash is in test_replay.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.errors import GitHubError, JiraError
from tests.services.runner.bench import WRITE, bench, ticket_script

LINT = {"ENABLE_LINT": 1}


class TestGateRounds:
    async def test_a_failing_lint_is_fixed_in_the_resumed_session(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(implement=WRITE), {"lint": ["E1 bad", True]}, **LINT)
        res = await b.run()
        assert res.status == "succeeded", res.error
        assert res.rounds("lint") == [("check", False), ("fix", None), ("check", True)]
        assert res.step("lint").detail["outcome"] == "passed" and res.step("lint").status == "succeeded"
        implement, fix = b.claude.calls
        assert (fix.phase, fix.session_id) == ("fix:lint", implement.session_id)
        assert "E1 bad" in fix.prompt  # the failure was fed back

    async def test_same_failure_right_after_a_fix_stops_for_stagnation(self, tmp_path: Path) -> None:
        # A -> B -> B: the first fix changed the failure, the second did not.
        b = bench(tmp_path, ticket_script(implement=WRITE), {"lint": ["A.md bad", "B.md bad", "B.md bad"]},
                  GATE_MAX_ROUNDS=5, **LINT)
        res = await b.run()
        assert res.status == "failed"
        assert res.error.startswith("lint: the same failure came back after fix round 2 (stagnation)")
        assert res.step("lint").detail["outcome"] == "stagnation" and res.step("lint").status == "failed"
        assert b.phases == ["implement", "fix:lint", "fix:lint"]
        assert b.workspace.committed == [] and b.prs.records() == []

    async def test_a_failure_that_comes_back_later_is_not_stagnation(self, tmp_path: Path) -> None:
        # A -> B -> A: each fix changed the failure; the gate goes on and passes.
        outcomes: list[bool | str] = ["A.md bad", "B.md bad", "A.md bad", True]
        b = bench(tmp_path, ticket_script(implement=WRITE), {"lint": outcomes},
                  GATE_MAX_ROUNDS=5, **LINT)
        res = await b.run()
        assert res.status == "succeeded", res.error
        assert b.phases == ["implement", "fix:lint", "fix:lint", "fix:lint"]

    async def test_round_limit(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(implement=WRITE), {"lint": ["A", "B", "C", True]},
                  GATE_MAX_ROUNDS=2, **LINT)
        res = await b.run()
        assert res.status == "failed"
        assert res.error.startswith("lint: still failing after 2 fix round(s) (round limit); last output: C")
        assert res.step("lint").detail["fix_rounds"] == 2 and b.checks.count("lint") == 3

    async def test_fix_requests_carry_phase_gate_round_and_allowed_commands(self, tmp_path: Path) -> None:
        seen = []
        b = bench(tmp_path, ticket_script(implement=WRITE), {"test": ["F1", "F2", True]},
                  ENABLE_TESTS=1, TEST_COMMAND='["pytest", "-q"]')
        original = b.claude.fix

        async def fix(req, session_id):  # type: ignore[no-untyped-def]
            seen.append((req.phase, req.gate, req.round, req.ticket_key, req.allowed_commands))
            return await original(req, session_id)

        b.claude.fix = fix  # type: ignore[method-assign]
        res = await b.run("PROJ-9")
        assert res.status == "succeeded", res.error
        assert seen == [("fix", "test", n, "PROJ-9", (("pytest", "-q"),)) for n in (1, 2)]

    async def test_review_then_lint_then_test_each_resume_the_latest_session(self, tmp_path: Path) -> None:
        script = ticket_script(implement=WRITE, review=["HAS_ISSUES: true\nFINDINGS:\n- a.py:1 bug",
                                                        "HAS_ISSUES: false\nFINDINGS:\nnone"])
        script["fork_on_fix"] = True  # every fix reports a new session id
        b = bench(tmp_path, script, {"lint": ["L", True], "test": ["T", True]},
                  ENABLE_REVIEW=1, ENABLE_LINT=1, ENABLE_TESTS=1)
        res = await b.run()
        assert res.status == "succeeded", res.error
        assert [s for s in res.steps if s in ("review", "lint", "test")] == ["review", "lint", "test"]
        assert b.phases == ["implement", "review", "fix:review", "review", "fix:lint", "fix:test"]
        fixes = [c for c in b.claude.calls if c.phase.startswith("fix")]
        assert fixes[0].session_id == b.claude.calls[0].session_id
        latest = [r["session_id"] for g in ("review", "lint") for r in res.step(g).detail["rounds"]
                  if r["kind"] == "fix"]
        assert [f.session_id for f in fixes[1:]] == latest  # each resumed the one before it reported
        assert res.record["session_id"] == res.step("test").detail["rounds"][1]["session_id"]
        body = b.prs.records()[0]["body"]
        assert "| review | passed | 1 |" in body and "| lint | passed | 1 |" in body

    async def test_an_unreadable_review_is_reported_not_blocking(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(implement=WRITE, review=["Looks great!"]), ENABLE_REVIEW=1)
        res = await b.run()
        assert res.status == "succeeded", res.error
        review = res.step("review")
        assert review.status == "succeeded" and review.detail["outcome"] == "error"
        assert b.phases == ["implement", "review"]  # no fix round for an unreadable review
        assert "Review could not be completed" in b.prs.records()[0]["body"]

    async def test_review_findings_that_never_clear_fail_the_run(self, tmp_path: Path) -> None:
        always = ["HAS_ISSUES: true\nFINDINGS:\n- a.py:1 bug"]
        b = bench(tmp_path, ticket_script(implement=WRITE, review=always),
                  ENABLE_REVIEW=1, GATE_MAX_ROUNDS=3)
        res = await b.run()
        assert res.status == "failed" and "stagnation" in res.error and "findings: - a.py:1 bug" in res.error


class TestOutcomes:
    async def test_no_changes_ends_the_run_as_an_outcome(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(implement=[], result="Already done in greet()."), **LINT)
        res = await b.run()
        assert (res.status, res.error) == ("no_changes", None)
        assert res.steps == ["prepare", "implement", "report", "cleanup"]  # no gate, nothing leaves
        assert res.step("implement").detail["has_changes"] is False
        assert b.workspace.committed == [] and b.workspace.pushed == [] and b.prs.records() == []
        assert "Already done in greet()." in b.jira.comments_for("PROJ-1")[0]
        assert res.step("cleanup").status == "succeeded"

    async def test_dry_run_leaves_nothing_and_keeps_the_worktree(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(implement=WRITE), DRY_RUN=1)
        res = await b.run()
        assert res.status == "succeeded"
        assert [res.step(n).status for n in ("commit", "push", "pull_request")] == ["skipped"] * 3
        assert b.workspace.committed == [] and b.workspace.pushed == [] and b.prs.records() == []
        worktree = b.workspace.prepared[0].path
        assert worktree.is_dir() and res.step("cleanup").status == "skipped"
        assert any(f"git worktree remove {worktree} --force" in line for line in res.logs)

    async def test_a_ticket_becomes_commit_push_and_pr(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(implement=WRITE))
        res = await b.run("PROJ-2", "Add the feature")
        assert res.status == "succeeded", res.error
        assert res.steps == ["prepare", "implement", "commit", "push", "pull_request", "report", "cleanup"]
        assert [c.message for c in b.workspace.committed] == ["PROJ-2: Add the feature"]
        assert b.workspace.pushed[0][0] == "ticket/proj-2"
        assert res.record["pr_url"] == b.prs.records()[0]["html_url"]
        assert b.jira.comments_for("PROJ-2") == [f"auto-code opened a pull request: {res.record['pr_url']}"]

    async def test_turns_and_cost_in_the_pr_come_from_the_steps(self, tmp_path: Path) -> None:
        # implement: 1 action + 1 = 2 turns; the fix: 1 action + 1 = 2 turns.
        fix = [[{"append": "src/feature.py", "content": "#\n"}]]
        script = ticket_script(implement=WRITE, **{"fix:lint": fix})
        b = bench(tmp_path, script, {"lint": ["E1", True]}, **LINT)
        res = await b.run()
        assert res.status == "succeeded", res.error
        assert "Agent turns: 4 " in b.prs.records()[0]["body"]
        assert res.record["turns"] == 4


class TestFailurePaths:
    @pytest.mark.parametrize("method", ["prepare", "commit", "push"])
    async def test_a_workspace_failure_fails_the_run_at_its_step(self, tmp_path: Path, method: str) -> None:
        b = bench(tmp_path, ticket_script(implement=WRITE))
        b.workspace.fail_on.add(method)
        res = await b.run()
        assert res.status == "failed"
        assert res.error == f"{method}: scripted failure in {method}"
        assert res.step(method).status == "failed"
        assert res.step(method).detail == {"error": f"scripted failure in {method}"}
        assert b.prs.records() == []
        after = {"prepare": "implement", "commit": "push", "push": "pull_request"}[method]
        assert after not in res.steps
        assert res.error in b.jira.comments_for("PROJ-1")[0]
        if method == "prepare":
            assert "cleanup" not in res.steps  # no worktree to keep
        else:
            assert res.step("cleanup").status == "skipped"  # kept for a post-mortem

    async def test_setup_failure(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(implement=WRITE), {"setup": ["npm ERR! missing"]}, ENABLE_SETUP=1)
        res = await b.run()
        assert res.status == "failed" and res.error == "setup: setup command exited 1: npm ERR! missing"
        assert res.step("setup").status == "failed" and res.step("setup").detail["exit_code"] == 1
        assert b.claude.calls == []

    async def test_implement_failure_names_the_agents_reason(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(errors={"implement": "max_turns"}))
        res = await b.run()
        assert res.status == "failed" and res.error.startswith("implement: agent max_turns")
        implement = res.step("implement")
        assert implement.status == "failed" and "max_turns" in implement.detail["error"]
        assert res.record["turns"] == 1  # what the failed call spent is recorded

    async def test_a_failed_fix_round_fails_its_gate(self, tmp_path: Path) -> None:
        script = ticket_script(implement=WRITE, errors={"fix:lint": "api_error"})
        b = bench(tmp_path, script, {"lint": ["E1"]}, **LINT)
        res = await b.run()
        assert res.status == "failed" and res.error.startswith("lint: agent api_error")
        lint = res.step("lint")
        assert lint.status == "failed" and lint.detail["outcome"] == "error"
        last = lint.detail["rounds"][-1]
        assert last["kind"] == "fix" and "api_error" in last["error"]

    async def test_pull_request_failure(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(implement=WRITE))

        async def refuse(**_: object) -> None:
            raise GitHubError("GitHub answered 422: a pull request already exists", status=422)

        b.prs.open_or_reuse = refuse  # type: ignore[method-assign]
        res = await b.run()
        assert res.status == "failed"
        assert res.error == "pull_request: GitHub answered 422: a pull request already exists"
        assert b.workspace.pushed  # what had happened stays recorded as it was
        assert res.step("pull_request").status == "failed" and res.step("push").status == "succeeded"

    async def test_a_secret_in_the_change_is_never_committed(self, tmp_path: Path) -> None:
        token = "ghp_BenchSecretValue0123456789abcdef"
        b = bench(tmp_path, ticket_script(implement=[{"write": "leak.txt", "content": f"t={token}\n"}]),
                  GH_TOKEN=token)
        res = await b.run()
        assert res.status == "failed"
        assert res.error == ("commit: outbound check: the change contains the value of GH_TOKEN (raw) in "
                             "leak.txt; nothing was committed")
        assert b.workspace.committed == [] and b.workspace.pushed == []

    async def test_a_bug_in_a_collaborator_still_ends_the_run_failed(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(implement=WRITE))

        async def explode(_wt: object) -> bool:
            raise RuntimeError("disk on fire")

        b.workspace.has_changes = explode  # type: ignore[method-assign]
        res = await b.run()
        assert (res.status, res.error) == ("failed", "internal error: RuntimeError: disk on fire")
        assert res.step("implement").status == "failed"  # no row left running


class TestNeverChangesTheOutcome:
    async def test_a_failing_jira_report(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(implement=WRITE))
        b.jira.fail_with = JiraError("Jira answered 503")
        res = await b.run()
        assert res.status == "succeeded"
        report = res.step("report")
        assert report.status == "failed" and report.detail == {"error": "Jira answered 503"}

    async def test_a_worktree_that_cannot_be_removed(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(implement=WRITE))
        b.workspace.fail_on.add("remove")
        res = await b.run()
        assert res.status == "succeeded" and res.step("cleanup").status == "failed"

    async def test_an_agent_killed_by_the_shutdown_is_not_the_runs_failure(self, tmp_path: Path) -> None:
        b = bench(tmp_path, ticket_script(errors={"implement": "process_error"}))
        b.deps.stopping = True
        with pytest.raises(asyncio.CancelledError):
            await b.run()
        (run_id,) = b.store.runs
        assert b.store.run(run_id)["status"] == "running"  # left to the replay after the restart
        assert b.store.steps(run_id)["implement"].status == "running"
        assert list(b.jira.comments) == []
