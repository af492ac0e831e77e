"""The DBOS steps of a follow-up run (walk.py strings them together; TicketRunner mixes them in).

Like the ticket steps they take and return frozen models, record their rows through `self.row`,
and redact every text that came from GitHub, CI or the agent before it is returned or stored.
Step rows: `followup` (what the run is for and what it found), `prepare`, `implement` (the agent's
round), the gates, `commit`, `push`, `reply` (what was posted on the PR), `cleanup`.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from app.errors import AgentError, AutoCodeError
from app.followups.deps import FollowupDeps, followup_deps, repo_key_for
from app.followups.files import LOG_DIR, copy_transcripts, remove_ci_logs, write_ci_logs
from app.followups.models import FollowupContext, FollowupKind, FollowupResult, Materials, Thread
from app.followups.steering import steer_refusal
from app.prompts import followup_prompts as prompts
from app.services.claude_code.base import AgentRequest
from app.services.claude_code.client import run_state_dir
from app.services.github.activity_base import CheckJob
from app.services.runner.errors import StepFailed
from app.services.runner.models import RunOptions, RunRef, WorktreeRef
from app.services.runner.record import StepBase
from app.services.runner.tables import runs

RERUN_POLL_SEC = 10.0
RERUN_WAIT_SEC = 1800.0  # a re-run that has not finished in 30 min is treated as failed


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:60] or "job"


class FollowupSteps(StepBase):
    @property
    def fu(self) -> FollowupDeps:
        return followup_deps(self.d)

    @DBOS.step()
    async def followup_begin(self, run: RunRef, opts: RunOptions) -> FollowupContext:
        """What this follow-up is for (from its record: kind, PR, parent, dedup key), the PR's
        counters, its head on GitHub, and the session to resume; `skip` when there is nothing to do."""
        fu, d = self.fu, self.d
        async with self.row(run, "followup") as row:
            row_ = await d.store.get_run_row(run.run_id)
            if row_ is None or row_.pr_number is None or row_.kind not in ("ci_fix", "review_fix"):
                raise StepFailed("followup", "the run record names no pull request to follow up")
            kind: FollowupKind = "ci_fix" if row_.kind == "ci_fix" else "review_fix"
            repo = repo_key_for(d, opts.repository)
            trigger = (row_.dedup_key or "").rsplit(":", 2)
            trigger_s = ":".join(trigger[-2:]) if len(trigger) >= 2 else ""
            pr = await fu.store.aget(repo, row_.pr_number)
            if pr is None:
                raise StepFailed(
                    "followup", f"pull request #{row_.pr_number} of {repo} is not one auto-code opened"
                )
            session, session_run = await asyncio.to_thread(self._latest_session, pr.parent_run_id, pr.number)
            parent = await d.store.get_run(pr.parent_run_id)
            opened = [
                s.detail.get("base_sha") for s in (parent.steps if parent else []) if s.name == "prepare"
            ]
            pr_base = opened[0] if opened and isinstance(opened[0], str) else None
            ctx = FollowupContext(
                kind=kind,
                repository=repo,
                number=pr.number,
                ticket=pr.ticket,
                branch=pr.branch,
                parent_run_id=pr.parent_run_id,
                trigger=trigger_s,
                session_id=session,
                session_run_id=session_run,
                ci_rounds=pr.ci_rounds,
                review_rounds=pr.review_rounds,
                ci_signature=pr.ci_signature,
                cost_usd=pr.cost_usd,
                pr_base_sha=pr_base,
            )
            skip = None
            if pr.state != "open":
                skip = f"pull request #{pr.number} is {pr.state}"
            elif pr.stop_reason:
                skip = f"follow-ups were stopped: {pr.stop_reason}"
            elif fu.activity is None:
                skip = "no GitHub API configured (GITHUB_CLIENT=local): nothing to read the PR from"
            else:
                try:
                    state = await fu.activity.pull(pr.number)
                except AutoCodeError as exc:
                    raise StepFailed("followup", exc.detail) from None
                ctx = ctx.model_copy(update={"head_sha": state.head_sha})
                if state.state != "open":
                    skip = f"pull request #{pr.number} is {'merged' if state.merged else 'closed'} on GitHub"
                    await fu.store.run(fu.store.close, repo, pr.number, merged=state.merged)
                elif kind == "ci_fix" and trigger_s.startswith("ci:") and trigger_s[3:] != state.head_sha:
                    skip = f"the branch moved on since {trigger_s[3:12]} (head is {state.head_sha[:12]})"
            ctx = ctx.model_copy(update={"skip": skip})
            row.detail = {
                "kind": kind,
                "pr": pr.number,
                "trigger": trigger_s,
                "head": ctx.head_sha,
                "resume": session,
                "ci_rounds": pr.ci_rounds,
                "review_rounds": pr.review_rounds,
                **({"skipped": skip} if skip else {}),
            }
        return ctx

    def _latest_session(self, parent_run_id: str, number: int) -> tuple[str | None, str | None]:
        """The newest agent session among the PR's runs (the opener and its follow-ups)."""
        engine = self.fu.store.engine
        query = (
            sa.select(runs.c.run_id, runs.c.session_id)
            .where(
                sa.or_(
                    runs.c.run_id == parent_run_id,
                    sa.and_(runs.c.parent_run_id == parent_run_id, runs.c.pr_number == number),
                ),
                runs.c.session_id.is_not(None),
            )
            .order_by(runs.c.created_at.desc())
            .limit(1)
        )
        with engine.connect() as conn:
            found = conn.execute(query).first()
        return (found[1], found[0]) if found else (None, None)

    @DBOS.step()
    async def followup_claim(self, run: RunRef, ctx: FollowupContext) -> bool:
        """Take the PR's branch (one follow-up at a time per PR); False while another holds it."""
        store = self.fu.store
        return bool(await store.run(store.claim, ctx.repository, ctx.number, run.run_id))

    @DBOS.step()
    async def followup_release(self, run: RunRef, ctx: FollowupContext) -> None:
        store = self.fu.store
        await store.run(store.release, ctx.repository, ctx.number, run.run_id)

    @DBOS.step(preemptible=True)
    async def followup_ci(self, run: RunRef, ctx: FollowupContext) -> Materials:
        """The failing jobs on the PR's head. A failed Actions job not yet re-run on this commit is
        re-run once first; one that then passes is flaky (reported, not fixed)."""
        fu = self.fu
        assert fu.activity is not None  # begin skips otherwise
        api, sha = fu.activity, ctx.head_sha
        async with self.row(run, "followup", begin=False, end=False) as row:
            try:
                failed = [j for j in await api.check_jobs(sha) if j.failed]
                rerun = [
                    j
                    for j in failed
                    if j.is_actions
                    and await fu.store.run(fu.store.add_rerun, ctx.repository, ctx.number, f"{sha}:{j.name}")
                ]
                for job in rerun:
                    await api.rerun_job(job)
                if rerun:
                    await self.say(
                        run,
                        f"re-running {', '.join(j.name for j in rerun)} once (flaky or broken?)",
                        step="followup",
                    )
                    failed = await self._after_reruns(sha, failed, rerun)
            except AutoCodeError as exc:
                raise StepFailed("followup", exc.detail) from None
            flaky = tuple(sorted({j.name for j in rerun} - {j.name for j in failed}))
            nothing = None
            if not failed:
                nothing = (
                    f"flaky: {', '.join(flaky)} passed on one re-run, nothing to fix"
                    if flaky
                    else f"CI is not failing on {sha[:12]}"
                )
            signature = ",".join(sorted({j.name for j in failed}))
            row.detail = {
                "failing": [j.name for j in failed],
                "rerun": [j.name for j in rerun],
                "flaky": list(flaky),
                "signature": signature,
                **({"nothing": nothing} if nothing else {}),
            }
        return Materials(kind="ci_fix", jobs=tuple(failed), signature=signature, flaky=flaky, nothing=nothing)

    async def _after_reruns(self, sha: str, failed: list[CheckJob], rerun: list[CheckJob]) -> list[CheckJob]:
        """Poll until every re-run job has a newer finished attempt; the failing jobs after that."""
        api = self.fu.activity
        assert api is not None
        waited, want = 0.0, {j.name: j.attempt for j in rerun}
        while True:
            jobs = {j.name: j for j in await api.check_jobs(sha)}
            done = all(n in jobs and jobs[n].attempt > a for n, a in want.items())
            if done or waited >= RERUN_WAIT_SEC:
                break
            await asyncio.sleep(RERUN_POLL_SEC)
            waited += RERUN_POLL_SEC
        return [
            jobs.get(j.name, j)
            for j in failed
            if j.name not in want or jobs.get(j.name, j).failed or jobs.get(j.name, j).attempt <= want[j.name]
        ]

    @DBOS.step()
    async def followup_review(self, run: RunRef, ctx: FollowupContext) -> Materials:
        """Every comment the service has not answered yet, from people allowed to steer, with its
        file, line, diff hunk and whole thread."""
        fu, d = self.fu, self.d
        assert fu.activity is not None
        api = fu.activity
        me = (await fu.service_login() or "").lower()
        async with self.row(run, "followup", begin=False, end=False) as row:
            try:
                comments = await api.review_comments(ctx.number)
                talk = await api.issue_comments(ctx.number)
            except AutoCodeError as exc:
                raise StepFailed("followup", exc.detail) from None
            threads: list[Thread] = []
            refused: list[str] = []
            roots = [c for c in comments if c.in_reply_to is None]
            for root in roots:
                thread = [root, *[c for c in comments if c.in_reply_to == root.id]]
                last = thread[-1]
                if last.author.login.lower() == me:
                    continue  # answered (the service's reply is the thread's last word)
                why = await steer_refusal(last.author, last.body, d.settings, api, me)
                if why:
                    refused.append(why)
                    continue
                threads.append(
                    Thread(
                        comment_id=last.id,
                        reply_to=root.id,
                        path=root.path,
                        line=root.line,
                        diff_hunk=d.scanner.redact(root.diff_hunk),
                        messages=tuple((c.author.login, d.scanner.redact(c.body)) for c in thread),
                    )
                )
            mine = [i for i, c in enumerate(talk) if c.author.login.lower() == me]
            for c in talk[(mine[-1] + 1) if mine else 0 :]:
                why = await steer_refusal(c.author, c.body, d.settings, api, me)
                if why:
                    refused.append(why)
                    continue
                threads.append(
                    Thread(
                        comment_id=c.id, reply_to=None, messages=((c.author.login, d.scanner.redact(c.body)),)
                    )
                )
            nothing = None if threads else "no unanswered comment from anyone allowed to steer"
            row.detail = {
                "threads": [t.comment_id for t in threads],
                "ignored": refused,
                **({"nothing": nothing} if nothing else {}),
            }
        return Materials(kind="review_fix", threads=tuple(threads), nothing=nothing)

    @DBOS.step(preemptible=True)
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
            if m.kind == "ci_fix" and fu.activity is not None:
                logs: list[tuple[str, str]] = []
                for n, job in enumerate(m.jobs, 1):
                    try:
                        text = await fu.activity.job_log(job)
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

    @DBOS.step(preemptible=True)
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

    @DBOS.step()
    async def followup_answer(
        self, run: RunRef, ctx: FollowupContext, m: Materials, result: FollowupResult, sha: str | None
    ) -> None:
        """Tell the PR what this round did: a reply under each addressed review comment (the agent's
        answer, or what changed), one comment for CI; and count the round."""
        fu = self.fu
        assert fu.activity is not None
        pushed = f" in {sha[:12]}" if sha else ""
        posted: list[str] = []
        async with self.row(run, "reply") as row:
            try:
                if m.kind == "ci_fix":
                    text = (
                        f"auto-code pushed a fix{pushed} for the failing CI ({m.signature}).\n\n"
                        f"{result.summary[:3000]}"
                    )
                    await fu.activity.comment(ctx.number, self._checked(text))
                    posted.append("comment")
                else:
                    said = dict(result.replies)
                    for t in m.threads:
                        answer = said.get(t.comment_id) or (
                            f"Addressed{pushed}: {result.summary[:1500]}"
                            if result.has_changes
                            else result.summary[:1500]
                        )
                        text = self._checked(answer)
                        if t.reply_to is not None:
                            await fu.activity.reply(ctx.number, t.reply_to, text)
                        else:
                            await fu.activity.comment(ctx.number, f"> {t.messages[0][1][:200]}\n\n{text}")
                        posted.append(str(t.comment_id))
            except AutoCodeError as exc:
                row.status, row.detail = "failed", {"error": exc.detail, "posted": posted}
                return
            finally:
                kind: Any = "ci" if m.kind == "ci_fix" else "review"
                await fu.store.run(
                    fu.store.add_round,
                    ctx.repository,
                    ctx.number,
                    kind=kind,
                    signature=m.signature or None,
                    cost_usd=result.cost_usd,
                )
            row.detail = {"posted": posted, "sha": sha}

    def _checked(self, text: str) -> str:
        """What the service posts on GitHub: redacted, and refused if a secret still shows."""
        text = self.d.scanner.redact(text)
        self.outbound_check("reply", "the PR comment", [("its text", text)], "nothing was posted")
        return text

    @DBOS.step()
    async def followup_failed_note(self, run: RunRef, ctx: FollowupContext, reason: str) -> None:
        """A round that failed (a gate, the agent, git) pushed nothing: say so on the PR, once per run.
        Best effort: a failure to comment is logged, the run's outcome stands."""
        fu = self.fu
        if fu.activity is None:
            return
        what = "the failing CI" if ctx.kind == "ci_fix" else "the review comments"
        text = f"auto-code could not address {what} in this round (run {run.run_id}): {reason[:1500]}"
        try:
            await fu.activity.comment(ctx.number, self._checked(text))
        except AutoCodeError as exc:
            await self.say(run, f"commenting on the PR failed: {exc.detail}", "warning", step="reply")

    @DBOS.step()
    async def followup_stop(self, run: RunRef, ctx: FollowupContext, limit: str, left: str) -> None:
        """A limit ended the loop: say which and what is left, on the PR and on the ticket; no more
        follow-ups for this PR (until someone re-opens the loop by hand)."""
        fu, d = self.fu, self.d
        text = (
            f"auto-code stopped following up on this pull request: {limit}. What is left: {left}. "
            "A person needs to take it from here."
        )
        problems: list[str] = []
        async with self.row(run, "reply") as row:
            await fu.store.run(fu.store.stop, ctx.repository, ctx.number, limit)
            if fu.activity is not None:
                try:
                    await fu.activity.comment(ctx.number, self._checked(text))
                except AutoCodeError as exc:
                    problems.append(exc.detail)
            if d.jira is not None:
                try:
                    await d.jira.comment(
                        run.key, d.scanner.redact(f"{text} (PR #{ctx.number}, run {run.run_id})")
                    )
                except Exception as exc:  # best effort, like every Jira report
                    problems.append(str(exc))
            row.detail = {"limit": limit, "left": left, **({"problems": problems} if problems else {})}
