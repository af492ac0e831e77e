"""The pipeline end to end through the real app: webhook → DBOS run → git worktree → scripted
Claude (really editing files) → gates with fix rounds → commit, push to a bare remote → PR record."""

from __future__ import annotations

from pathlib import Path

from app.composition import Collaborators
from app.config import Settings
from app.services.workspace import GitWorkspace, Worktree
from tests.gitrepos import git, remote_sha
from tests.services.runner.harness import running_service, step

BAD_LINE = "def f():   \n    return 1\n"  # trailing whitespace: the demo lint fails on it


def _ticket(**phases: object) -> dict[str, object]:
    return {"tickets": {"*": phases}}


class TestHappyPath:
    def test_ticket_becomes_pushed_branch_and_pr(self, tmp_path: Path) -> None:
        with running_service(tmp_path, ENABLE_LINT=1, ENABLE_TESTS=1) as svc:
            run = svc.run("PROJ-1", "Add the docs page")
            prs = svc.prs()
        assert run["status"] == "succeeded", run["error"]
        assert [s["name"] for s in run["steps"]] == [
            "prepare", "implement", "lint", "test", "commit", "push", "pull_request", "report", "cleanup"]
        assert run["branch"] == "ticket/proj-1"
        assert remote_sha(svc.remote, "ticket/proj-1") is not None
        files = git(svc.remote, "ls-tree", "-r", "--name-only", "ticket/proj-1").split()
        assert "docs/tickets/proj-1.md" in files
        subject = git(svc.remote, "log", "-1", "--format=%s|%an", "ticket/proj-1").strip()
        assert subject == "PROJ-1: Add the docs page|auto-code"
        assert len(prs) == 1 and prs[0]["head"] == "ticket/proj-1" and prs[0]["base"] == "main"
        assert run["pr_url"] == prs[0]["html_url"]
        assert "PROJ-1" in prs[0]["body"] and "| lint | passed | 0 |" in prs[0]["body"]
        assert run["session_id"] and run["turns"] >= 1
        assert not (svc.workspace / "worktrees" / "ticket-proj-1").exists()  # cleaned up
        assert step(run, "report")["status"] == "skipped"


class TestGates:
    def test_lint_failure_is_fixed_in_the_same_session(self, tmp_path: Path) -> None:
        script = _ticket(implement=[{"write": "pkg/mod.py", "content": BAD_LINE}],
                         **{"fix:lint": [[{"replace": "pkg/mod.py", "old": "():   \n", "new": "():\n"}]]})
        with running_service(tmp_path, script, ENABLE_LINT=1) as svc:
            run = svc.run("PROJ-2")
            calls = [(c.phase, c.session_id) for c in svc.claude.calls]
        assert run["status"] == "succeeded", run["error"]
        (impl_phase, impl_session), (fix_phase, fix_session) = calls
        assert (impl_phase, fix_phase) == ("implement", "fix:lint")
        assert fix_session == impl_session  # resumed, not a new session
        lint = step(run, "lint")
        assert [(r["kind"], r.get("passed")) for r in lint["detail"]["rounds"]] == [
            ("check", False), ("fix", None), ("check", True)]
        assert lint["detail"]["outcome"] == "passed" and lint["detail"]["fix_rounds"] == 1
        assert "trailing whitespace" in lint["detail"]["rounds"][0]["output"]
        assert "trailing whitespace" in svc.claude.calls[1].prompt  # the failure was fed back

    def test_review_with_issues_then_clean(self, tmp_path: Path) -> None:
        script = _ticket(
            implement=[{"write": "a.md", "content": "draft\n"}],
            review=["HAS_ISSUES: true\nFINDINGS:\n- a.md: says draft", "HAS_ISSUES: false\nFINDINGS:\nnone"],
            **{"fix:review": [[{"write": "a.md", "content": "final\n"}]]},
        )
        with running_service(tmp_path, script, ENABLE_REVIEW=1) as svc:
            run = svc.run("PROJ-3")
            phases = [c.phase for c in svc.claude.calls]
        assert run["status"] == "succeeded", run["error"]
        assert phases == ["implement", "review", "fix:review", "review"]
        assert "a.md: says draft" in svc.claude.calls[2].prompt
        review = step(run, "review")
        assert review["detail"]["outcome"] == "passed" and review["detail"]["fix_rounds"] == 1
        assert git(svc.remote, "show", "ticket/proj-3:a.md") == "final\n"

    def test_same_test_failure_twice_stops_for_stagnation(self, tmp_path: Path) -> None:
        failing = ("import unittest\n\n\nclass T(unittest.TestCase):\n"
                   "    def test_x(self) -> None:\n        self.assertEqual(1, 2)\n")
        script = _ticket(implement=[{"write": "tests/test_x.py", "content": failing}],
                         **{"fix:test": [[{"append": "notes.md", "content": "tried\n"}]]})
        with running_service(tmp_path, script, ENABLE_TESTS=1, GATE_MAX_ROUNDS=5) as svc:
            run = svc.run("PROJ-4")
            phases = [c.phase for c in svc.claude.calls]
            prs = svc.prs()
        assert run["status"] == "failed"
        assert "stagnation" in run["error"] and run["error"].startswith("test:")
        assert phases == ["implement", "fix:test"]  # one fix, then the same failure: stop
        assert step(run, "test")["detail"]["outcome"] == "stagnation"
        assert prs == [] and remote_sha(svc.remote, "ticket/proj-4") is None
        assert (svc.workspace / "worktrees" / "ticket-proj-4").is_dir()  # kept for a post-mortem

    def test_round_limit(self, tmp_path: Path) -> None:
        # Each fix round trades one lint failure for a different one: progress that never ends.
        rounds = [[{"delete": f"bad{n}.md"}, {"write": f"bad{n + 1}.md", "content": "x  \n"}] for n in (1, 2)]
        script = _ticket(implement=[{"write": "bad1.md", "content": "x  \n"}], **{"fix:lint": rounds})
        script["fork_on_fix"] = True  # every fix reports a new session id
        with running_service(tmp_path, script, ENABLE_LINT=1, GATE_MAX_ROUNDS=2) as svc:
            run = svc.run("PROJ-5")
            calls = list(svc.claude.calls)
        assert run["status"] == "failed"
        assert "round limit" in run["error"]
        assert [c.phase for c in calls] == ["implement", "fix:lint", "fix:lint"]
        assert step(run, "lint")["detail"]["outcome"] == "round_limit"
        # Each fix resumes the LATEST session id: the one the previous fix reported.
        fix_ids = [r["session_id"] for r in step(run, "lint")["detail"]["rounds"] if r["kind"] == "fix"]
        assert calls[1].session_id == calls[0].session_id
        assert calls[2].session_id == fix_ids[0] != calls[0].session_id
        assert run["session_id"] == fix_ids[1]

    def test_stagnation_compares_with_the_previous_failure(self, tmp_path: Path) -> None:
        # A -> B -> B: the first fix changed the failure (progress), the second did not.
        rounds = [[{"delete": "bad1.md"}, {"write": "bad2.md", "content": "x  \n"}],
                  [{"append": "bad2.md", "content": "tried\n"}]]  # leaves line 1 as it was
        script = _ticket(implement=[{"write": "bad1.md", "content": "x  \n"}], **{"fix:lint": rounds})
        with running_service(tmp_path, script, ENABLE_LINT=1, GATE_MAX_ROUNDS=5) as svc:
            run = svc.run("PROJ-15")
            phases = [c.phase for c in svc.claude.calls]
        assert run["status"] == "failed" and "stagnation" in run["error"]
        assert phases == ["implement", "fix:lint", "fix:lint"]
        assert "fix round 2" in run["error"]


class TestOutcomes:
    def test_no_changes_is_an_outcome_not_a_crash(self, tmp_path: Path) -> None:
        script = _ticket(implement=[], result="The feature already exists in greeter.greet().")
        with running_service(tmp_path, script) as svc:
            run = svc.run("PROJ-6")
            prs = svc.prs()
        assert run["status"] == "no_changes" and run["error"] is None
        assert step(run, "implement")["detail"]["has_changes"] is False
        assert prs == [] and remote_sha(svc.remote, "ticket/proj-6") is None

    def test_dry_run_keeps_worktree_and_pushes_nothing(self, tmp_path: Path) -> None:
        with running_service(tmp_path, DRY_RUN=1) as svc:
            run = svc.run("PROJ-7")
            logs = svc.logs(run["run_id"])
            prs = svc.prs()
        assert run["status"] == "succeeded"
        for name in ("commit", "push", "pull_request"):
            assert step(run, name)["status"] == "skipped"
        worktree = svc.workspace / "worktrees" / "ticket-proj-7"
        assert (worktree / "docs" / "tickets" / "proj-7.md").is_file()
        assert remote_sha(svc.remote, "ticket/proj-7") is None and prs == []
        assert any(f"git worktree remove {worktree} --force" in line for line in logs)

    def test_agent_failure_fails_the_run_with_its_reason(self, tmp_path: Path) -> None:
        script = _ticket(errors={"implement": "max_turns"})
        with running_service(tmp_path, script) as svc:
            run = svc.run("PROJ-8")
        assert run["status"] == "failed"
        assert run["error"].startswith("implement: agent max_turns")
        assert step(run, "implement")["status"] == "failed"


class TestIsolation:
    def test_two_tickets_in_parallel_do_not_touch_each_other(self, tmp_path: Path) -> None:
        script = {"delay_s": 0.3, "tickets": {"*": {"implement": [
            {"write": "owned/{slug}.txt", "content": "{key}\n"}]}}}
        with running_service(tmp_path, script, MAX_CONCURRENT_RUNS=2) as svc:
            a, b = svc.deliver("PROJ-10"), svc.deliver("PROJ-11")
            runs = [svc.wait(a["run_id"]), svc.wait(b["run_id"])]
            cwds = {c.ticket_key: c.cwd for c in svc.claude.calls}
        assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
        assert cwds["PROJ-10"] != cwds["PROJ-11"]
        for key, other in (("proj-10", "proj-11"), ("proj-11", "proj-10")):
            files = git(svc.remote, "ls-tree", "-r", "--name-only", f"ticket/{key}").split()
            assert f"owned/{key}.txt" in files and f"owned/{other}.txt" not in files

    def test_same_ticket_twice_reuses_branch_and_pr(self, tmp_path: Path) -> None:
        script = _ticket(implement=[{"append": "log.md", "content": "run\n"}])
        with running_service(tmp_path, script) as svc:
            first = svc.run("PROJ-12")
            second = svc.run("PROJ-12")
            prs = svc.prs()
        assert first["status"] == second["status"] == "succeeded"
        assert first["run_id"] != second["run_id"]
        assert len(prs) == 1 and first["pr_url"] == second["pr_url"]
        assert step(second, "pull_request")["detail"]["created"] is False
        # The branch was reset to the base, not stacked: one line from the latest run only.
        assert git(svc.remote, "show", "ticket/proj-12:log.md") == "run\n"


class Broken(RuntimeError):
    """A bug somewhere in a collaborator (module level: DBOS pickles a step's exception)."""


class TestUnexpectedErrors:
    def test_a_crashing_collaborator_still_ends_the_run_failed(self, tmp_path: Path) -> None:
        class BrokenWorkspace(GitWorkspace):
            async def has_changes(self, worktree: Worktree) -> bool:  # a fault right after implement
                raise Broken("disk on fire")

        def broken(settings: Settings) -> Collaborators:
            return Collaborators(workspace=BrokenWorkspace(settings))

        with running_service(tmp_path, collaborators=broken) as svc:
            run = svc.run("PROJ-13")
        assert run["status"] == "failed"
        assert run["error"] == "internal error: Broken: disk on fire"
        assert step(run, "implement")["status"] == "failed"  # no step row left "running"



class TestReplayUsesRecordedOptions:
    def test_a_replayed_run_keeps_the_shape_it_started_with(self, tmp_path: Path) -> None:
        """DBOS replays recorded steps by position. A run resumed after a restart under another
        configuration (here: lint switched on) must keep the steps it started with: the options
        come from its recorded start step, not from the live settings."""
        from dbos import DBOS

        with running_service(tmp_path, DRY_RUN=1) as svc:
            run = svc.run("PROJ-14")
            assert run["status"] == "succeeded"
            svc.app.state.settings.enable_lint = True  # the "new deployment"

            async def replay_after_implement() -> list[str]:
                # Steps 0-4 (start, hold_for_spend, prepare, configure, implement) come from the
                # record; the rest re-execute.
                handle = await DBOS.fork_workflow_async(run["run_id"], 5)
                assert await handle.get_result() == "succeeded"
                steps = await DBOS.list_workflow_steps_async(handle.get_workflow_id())
                return [st["function_name"].rsplit(".", 1)[-1] for st in steps]

            replayed = svc.client.portal.call(replay_after_implement)
        assert replayed[:5] == ["start", "hold_for_spend", "prepare", "configure", "implement"]
        assert "gate_check" not in replayed  # lint was not part of this run


class TestDeliveryRightAfterARunEnds:
    def test_a_delivery_while_the_ended_run_still_holds_the_key_starts_new_work(self, tmp_path: Path) -> None:
        """The run record turns final a moment before DBOS releases the ticket's dedup key. A
        delivery in that window is new work, not a duplicate of a run that has ended."""
        import asyncio

        from dbos import DBOS

        with running_service(tmp_path, {"delay_s": 30, "tickets": {}}) as svc:
            first = svc.deliver("PROJ-16")["run_id"]
            # Freeze the window: the record says "succeeded", DBOS still holds the key ...
            svc.services.store.sync.update_run(first, status="succeeded")

            pending: list[asyncio.Task[None]] = []  # a reference, so the task is not collected

            async def release_soon() -> None:  # ... until the workflow really ends, 0.3 s later
                async def later() -> None:
                    await asyncio.sleep(0.3)
                    await DBOS.cancel_workflow_async(first)

                pending.append(asyncio.get_running_loop().create_task(later()))

            svc.client.portal.call(release_soon)
            second = svc.client.post("/webhook/jira", json={"key": "PROJ-16", "summary": "again"}).json()
        assert second["status"] == "queued"
        assert second["run_id"] != first
