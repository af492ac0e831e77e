"""The DBOS steps of a follow-up run (walk.py strings them together; TicketRunner mixes them in).

Like the ticket steps they take and return frozen models, record their rows through `self.row`,
and redact every text that came from GitHub, CI or the agent before it is returned or stored.
Step rows: `followup` (what the run is for and what it found), `prepare`, `implement` (the agent's
round), the gates, `commit`, `push`, `reply` (what was posted on the PR), `cleanup`.

`FollowupSteps` is the one class the walk mixes in. Here: the run's frame (`followup_begin`, and
`followup_claim` / `followup_release` of the PR's branch). Composed from: ci_steps.py (what a
`ci_fix` gathers), review_steps.py (what a `review_fix` gathers), round_steps.py (the worktree and
the agent round), report_steps.py (what is said on the PR and the ticket); step_base.py says why
their steps keep the names `FollowupSteps.<method>`.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from dbos import DBOS

from app.errors import AutoCodeError
from app.followups.ci_steps import CiSteps
from app.followups.deps import repo_key_for
from app.followups.models import FollowupContext, FollowupKind
from app.followups.report_steps import ReportSteps
from app.followups.review_steps import ReviewSteps
from app.followups.round_steps import RoundSteps
from app.services.runner.errors import StepFailed
from app.services.runner.models import RunOptions, RunRef
from app.services.runner.tables import runs


class FollowupSteps(CiSteps, ReviewSteps, RoundSteps, ReportSteps):
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
            elif (api := fu.activity(repo)) is None:  # the PR's own repository's client
                skip = "no GitHub API configured (GITHUB_CLIENT=local): nothing to read the PR from"
            else:
                try:
                    state = await api.pull(pr.number)
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
