"""The steps that deliver and close a run: commit, push, pull_request, report, cleanup, finish.

DBOS steps of `TicketRunner` like those of steps.py. Before anything leaves, the outbound check
scans it for every secret value: the change before `commit`, every object of the push before
`push`, the title and body before the PR; a hit fails the run naming the variable and the file,
never the value. `report` and `cleanup` are best effort: whatever goes wrong there, the run's
outcome stands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from dbos import DBOS

from app.errors import AutoCodeError, WorkspaceError
from app.services.runner.errors import StepFailed
from app.services.runner.models import (
    FinalStatus,
    GateResult,
    ImplementOutcome,
    PrRef,
    Report,
    RunRef,
    Usage,
    WorktreeRef,
)
from app.services.runner.pr_body import commit_message, pr_title, render_pr_body
from app.services.runner.record import StepBase


def _detail(exc: Exception) -> str:
    return exc.detail if isinstance(exc, AutoCodeError) else f"{type(exc).__name__}: {exc}"


class DeliverySteps(StepBase):
    @DBOS.step()
    async def skip(self, run: RunRef, name: str, reason: str) -> None:
        async with self.row(run, name, begin=False) as row:
            row.status, row.detail = "skipped", {"reason": reason}

    @DBOS.step()
    async def commit(self, run: RunRef, wt: WorktreeRef) -> str | None:
        """The new HEAD sha (None: a re-run found its commit already made)."""
        ws = self.d.repository(wt.repository).workspace
        async with self.row(run, "commit") as row:
            self.require("commit", wt)
            message = commit_message(run.ticket)
            try:
                pending: list[tuple[str, str | bytes]] = [*await ws.pending_files(wt.worktree),
                                                          ("the commit message", message)]
            except AutoCodeError as exc:  # what cannot be read cannot be checked: nothing leaves
                raise StepFailed("commit", f"{exc.detail}; nothing was committed") from None
            self.outbound_check("commit", "the change", pending, "nothing was committed")
            sha: str | None
            try:
                sha = await ws.commit(wt.worktree, message)
            except AutoCodeError as exc:
                # Re-run after a crash that happened after the commit: "nothing to commit" (git's
                # exit 0) on a branch already past its base is fine. Any other failure is not.
                done = isinstance(exc, WorkspaceError) and exc.exit_code == 0
                if not (done and await ws.has_changes(wt.worktree)):
                    raise StepFailed("commit", exc.detail) from None
                sha = None
            row.detail = {"sha": sha, "message": message}
        return sha

    @DBOS.step(preemptible=True)
    async def push(self, run: RunRef, wt: WorktreeRef) -> None:
        ws = self.d.repository(wt.repository).workspace
        async with self.row(run, "push") as row:
            try:
                outgoing = await ws.outgoing_objects(wt.worktree)
            except AutoCodeError as exc:
                raise StepFailed("push", f"{exc.detail}; nothing was pushed") from None
            self.outbound_check("push", "the push", outgoing, "nothing was pushed")
            try:
                await ws.push(wt.worktree)
            except AutoCodeError as exc:
                raise StepFailed("push", exc.detail) from None
            row.detail = {"branch": wt.branch}

    @DBOS.step()
    async def pull_request(self, run: RunRef, wt: WorktreeRef, impl: ImplementOutcome,
                           gates: Sequence[GateResult], usage: Usage) -> PrRef:
        """Open the PR for the branch, or reuse the open one. Turns and cost are the run's totals as
        the steps returned them; the review findings are the review gate's."""
        d = self.d
        async with self.row(run, "pull_request") as row:
            repo = d.repository(wt.repository)  # the repository the run was routed to
            diff = await repo.workspace.diff_summary(wt.worktree) if Path(wt.path).is_dir() else ""
            findings = next((g.findings for g in gates if g.gate == "review"), None)
            redact = d.scanner.redact  # the agent's texts are redacted; what the service adds is checked
            body = render_pr_body(
                run.ticket, summary=redact(impl.summary), diff_summary=diff, gates=gates,
                review_findings=redact(findings) if findings else None, turns=usage.turns,
                cost_usd=usage.cost_usd, run_id=run.run_id, repository=repo.name,
            )
            title = pr_title(run.ticket)
            self.outbound_check("pull_request", "the pull request",
                                [("its title", title), ("its body", body)], "no pull request was opened")
            try:
                pr = await repo.pull_requests.open_or_reuse(head=wt.branch, base=repo.config.base_branch,
                                                            title=title, body=body)
            except AutoCodeError as exc:
                raise StepFailed("pull_request", exc.detail) from None
            await d.store.update_run(run.run_id, pr_url=pr.html_url)
            # Follow-ups of this PR find it, and the run that opened it (issue 11). Imported here:
            # app.followups imports the runner's tables, whose package imports this module.
            from app.followups.track import track_pull_request

            await track_pull_request(d, ticket=run.key, run_id=run.run_id, branch=wt.branch,
                                     number=pr.number, html_url=pr.html_url, repository=wt.repository)
            row.detail = {"number": pr.number, "url": pr.html_url, "created": pr.created}
        await self.say(run, f"pull request {'opened' if pr.created else 'updated'}: {pr.html_url}",
                       step="pull_request")
        return PrRef(number=pr.number, url=pr.html_url, created=pr.created)

    @DBOS.step()
    async def report(self, run: RunRef, report: Report) -> None:
        """Tell the ticket what happened. Best effort: its failure never fails the run."""
        jira, key = self.d.jira, run.key
        if jira is None:
            async with self.row(run, "report", begin=False) as row:
                row.status, row.detail = "skipped", {"reason": "Jira reporting not configured"}
            return
        redact = self.d.scanner.redact  # a comment leaves: never with a secret in it
        text = redact(report.text) if report.text else ""
        problem: str | None = None
        async with self.row(run, "report") as row:
            row.detail = {"outcome": report.outcome}
            try:
                if self.d.progress is not None:
                    # The run's one comment, edited to its final state (progress.py); then the link
                    # and the optional transition. Bounded: a slow Jira never holds the run for long.
                    await asyncio.wait_for(self._final_report(run, report),
                                           self.d.settings.jira_progress_timeout_sec * 3)
                elif report.outcome == "succeeded" and report.pr_url:
                    await jira.comment(key, redact(f"auto-code opened a pull request: {report.pr_url}"))
                    await jira.link_pull_request(key, report.pr_url, f"Pull request for {key}")
                    if self.d.settings.jira_done_transition:
                        await jira.transition(key, self.d.settings.jira_done_transition)
                elif report.outcome == "no_changes":
                    await jira.comment(key, f"auto-code made no changes for this ticket. The agent said:\n"
                                            f"{text[:3000]}")
                elif report.outcome == "failed":
                    await jira.comment(key, f"auto-code could not finish this ticket (run {run.run_id}): "
                                            f"{text}"[:3000])
                else:
                    row.status, row.detail = "skipped", {"reason": report.outcome}
            except Exception as exc:  # best effort: whatever goes wrong, the run's outcome stands
                timed_out = isinstance(exc, TimeoutError)
                problem = "timed out (JIRA_PROGRESS_TIMEOUT_SEC)" if timed_out else _detail(exc)
                row.status, row.detail = "failed", {"error": problem}
        if problem:
            await self.say(run, f"reporting to Jira failed: {problem}", "warning", step="report")

    async def _final_report(self, run: RunRef, report: Report) -> None:
        d, key = self.d, run.key
        assert d.progress is not None and d.jira is not None
        await d.progress.final(run.run_id, key, report)
        if report.outcome == "succeeded" and report.pr_url:
            await d.jira.link_pull_request(key, report.pr_url, f"Pull request for {key}")
            if d.settings.jira_done_transition:
                await d.jira.transition(key, d.settings.jira_done_transition)

    @DBOS.step()
    async def cleanup(self, run: RunRef, wt: WorktreeRef, keep: bool) -> None:
        """Remove the worktree, or keep it (failed and dry runs) and log how to remove it."""
        if keep:
            hint = f"git worktree remove {wt.path} --force"
            async with self.row(run, "cleanup", begin=False) as row:
                row.status, row.detail = "skipped", {"kept": wt.path, "remove_with": hint}
            await self.say(run, f"worktree kept for inspection; remove it with: {hint}", step="cleanup")
            return
        problem: str | None = None
        async with self.row(run, "cleanup") as row:
            try:
                await self.d.repository(wt.repository).workspace.remove(wt.worktree)
            except Exception as exc:  # a worktree we could not remove must not turn a PR into a failure
                problem = _detail(exc)
                row.status, row.detail = "failed", {"error": problem}
        if problem:
            await self.say(run, f"worktree not removed: {problem}", "warning", step="cleanup")

    @DBOS.step()
    async def finish(self, run: RunRef, status: FinalStatus, error: str | None) -> str:
        # Export this ticket's spans before the run shows as ended, so whoever sees the final status
        # finds the trace complete. Flushing can wait on the network: off the event loop.
        await asyncio.to_thread(self.d.tracer.flush)
        if status == "failed":
            await self.d.store.fail_running_steps(run.run_id, error or "failed")
        await self.d.store.update_run(run.run_id, status=status, error=error)
        if self.d.metrics is not None:
            record = await self.d.store.get_run_row(run.run_id)  # which repository (routing set it)
            repository = record.get("repository") if record is not None else None
            self.d.metrics.run_finished(status, repository if isinstance(repository, str) else None)
        if self.d.progress is not None:  # a run that ended without its report still closes its comment
            self.d.progress.ended(run.run_id, run.key)
        level = "warning" if status == "failed" else "info"
        await self.say(run, f"run_finished status={status}" + (f" error={error}" if error else ""), level,
                       step="finish")
        return status
