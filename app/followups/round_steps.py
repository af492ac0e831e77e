"""The fix round of a follow-up, either kind: the worktree re-created from the pushed branch with
the CI logs written into it (`followup_prepare`), and one agent round on it, resuming the ticket's
session when its transcript can be brought over (`followup_agent`).

The steps keep their recorded names `FollowupSteps.<method>` (see step_base.py).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from dbos import DBOS

from app.errors import AgentError, AutoCodeError
from app.followups.files import LOG_DIR, copy_transcripts, remove_ci_logs, write_ci_logs
from app.followups.models import FollowupContext, FollowupResult, Materials
from app.followups.step_base import FollowupStepBase
from app.prompts import followup_prompts as prompts
from app.services.claude_code.base import AgentRequest
from app.services.claude_code.client import run_state_dir
from app.services.runner.errors import StepFailed
from app.services.runner.models import RunOptions, RunRef, WorktreeRef


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:60] or "job"


class RoundSteps(FollowupStepBase):
    @DBOS.step(name="FollowupSteps.followup_prepare", preemptible=True)
    async def followup_prepare(
        self, run: RunRef, opts: RunOptions, m: Materials, ctx: FollowupContext
    ) -> tuple[WorktreeRef, str]:
        """The worktree re-created from the pushed branch, with the CI logs written into it, and the
        PR's whole diff (from the base its opener started on; read before the logs are written, so
        they are not in it) for a session that cannot resume."""
        fu = self.fu
        async with self.row(run, "prepare") as row:
            try:
                workspace = self.d.repository(opts.repository).workspace
                wt = WorktreeRef.of(await workspace.prepare_branch(run.key), opts.repository)
            except AutoCodeError as exc:
                raise StepFailed("prepare", exc.detail) from None
            await self.d.store.update_run(run.run_id, branch=wt.branch)
            whole = wt.model_copy(update={"base_sha": ctx.pr_base_sha}) if ctx.pr_base_sha else wt
            try:
                pr_diff = self.d.scanner.redact(await workspace.diff_summary(whole.worktree))
            except AutoCodeError:
                pr_diff = "(the diff of the pull request could not be read; see `git log` in this directory)"
            files: list[str] = []
            api = fu.activity(ctx.repository)  # the logs of the PR's own repository
            if m.kind == "ci_fix" and api is not None:
                logs: list[tuple[str, str]] = []
                for n, job in enumerate(m.jobs, 1):
                    try:
                        text = await api.job_log(job)
                    except AutoCodeError as exc:
                        text = f"(the log could not be read: {exc.detail})\n{job.summary}"
                    logs.append((f"{n}-{_safe(job.name)}.log", self.d.scanner.redact(text)))
                files = await asyncio.to_thread(write_ci_logs, Path(wt.path), logs)
            row.detail = {**wt.model_dump(mode="json"), "log_files": files}
        await self.say(
            run, f"worktree ready at {wt.path} on {wt.branch} (from the pushed branch)", step="prepare"
        )
        return wt, pr_diff

    def log_files(self, wt: WorktreeRef, m: Materials) -> tuple[str, ...]:
        return tuple(
            f"{LOG_DIR}/{n}-{_safe(j.name)}.log"
            for n, j in enumerate(m.jobs, 1)
            if (Path(wt.path) / LOG_DIR).is_dir()
        )

    @DBOS.step(name="FollowupSteps.followup_agent", preemptible=True)
    async def followup_agent(
        self,
        run: RunRef,
        wt: WorktreeRef,
        ctx: FollowupContext,
        m: Materials,
        opts: RunOptions,
        pr_diff: str = "",
    ) -> FollowupResult:
        """One agent round: the ticket's session resumed when its transcript is here, else a new one
        with the ticket, the PR's diff and the trigger. The CI logs are removed afterwards."""
        d = self.d
        round_no = (ctx.ci_rounds if m.kind == "ci_fix" else ctx.review_rounds) + 1
        async with self.row(run, "implement") as row:
            self.require("implement", wt)
            cwd = Path(wt.path)
            resumed = self._bring_transcript(ctx, run.run_id)
            m = m.model_copy(update={"log_files": self.log_files(wt, m)})
            if resumed:
                prompt = prompts.resumed_prompt(m)
            else:  # a new session: the ticket, the PR's whole diff (followup_prepare), the trigger
                prompt = prompts.fresh_prompt(run.ticket, pr_diff, m)
            req = AgentRequest(
                cwd=cwd,
                prompt=prompt,
                ticket_key=run.key,
                run_id=run.run_id,
                log=self.agent_log(run),
                phase="fix" if resumed else "implement",
                gate=m.kind,
                round=round_no,
                allowed_commands=opts.allowed_commands,
            )
            try:
                call = await (d.claude.fix(req, ctx.session_id or "") if resumed else d.claude.implement(req))
            except AgentError as exc:
                raise await self.agent_failed(run, "implement", f"{m.kind}:{round_no}", exc) from None
            finally:
                await asyncio.to_thread(remove_ci_logs, cwd)
            await self.record_call(
                run, f"{m.kind}:{round_no}", call.turns, call.cost_usd, call.session_id, call.usage
            )
            summary = d.scanner.redact(call.result_text)
            wanted = {t.comment_id for t in m.threads}
            replies = tuple(sorted(prompts.parse_replies(summary, wanted).items()))
            changed = await d.repository(opts.repository).workspace.has_changes(wt.worktree)
            row.detail = {
                "session_id": call.session_id,
                "resumed": resumed,
                "turns": call.turns,
                "cost_usd": call.cost_usd,
                "has_changes": changed,
                "summary": summary[-2000:],
                "replies": len(replies),
            }
        return FollowupResult(
            session_id=call.session_id,
            has_changes=changed,
            summary=summary,
            replies=replies,
            turns=call.turns,
            cost_usd=call.cost_usd,
        )

    def _bring_transcript(self, ctx: FollowupContext, run_id: str) -> bool:
        """Copy the session's transcript from the run that holds it into this run's CLI state (each
        run's state is its own), so `resume` finds it; False when there is none to resume."""
        if not ctx.session_id or not ctx.session_run_id:
            return False
        config = self.d.settings.claude_config_dir
        source, target = run_state_dir(config, ctx.session_run_id), run_state_dir(config, run_id)
        if source == target:
            return True
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", ctx.session_id):  # it names a file: no paths
            return False
        found = [
            p for p in source.glob(f"projects/*/{ctx.session_id}.jsonl") if p.is_file() and not p.is_symlink()
        ]
        if not found:
            return False
        copy_transcripts(source / "projects", target / "projects")  # regular files only, links skipped
        return True
