"""The walk of one follow-up run (`ci_fix` / `review_fix`) on a PR the service opened.

`TicketRunner.pipeline` hands a run whose record says it is a follow-up to `followup(run, opts)`
after `start` (which routed it and fixed its options). Deterministic given the step outputs, like
the ticket walk:

  begin (what for, the PR's counters, its head, the session) → skip? → claim the PR's branch (one
  follow-up per PR at a time; durable sleeps while another holds it) → gather (CI: failing jobs,
  one re-run of each on this commit to tell flaky from broken, waited for in recorded checks with
  durable sleeps between them (ci_steps.py); review: unanswered threads from people allowed to
  steer) → nothing? → limits (stagnation: the same failing jobs after a fix; rounds; the PR's
  budget) → prepare from the pushed branch (+ CI logs as files) → agent (resumed
  session, else a fresh one) → gates → commit + push (a new commit on the branch) → answer on the
  PR (replies / comment; round counted) → cleanup → release → finish.

A limit ends the loop with a comment on the PR and the ticket (`followup_stop`) and the run
`failed` naming the limit; later deliveries for that PR are answered `ignored`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dbos import DBOS

from app.followups.models import FollowupContext, Materials
from app.followups.steps import FollowupSteps
from app.services.runner.delivery import DeliverySteps
from app.services.runner.errors import StepFailed
from app.services.runner.models import (
    GateResult,
    ImplementOutcome,
    Report,
    RunOptions,
    RunRef,
    Usage,
    WorktreeRef,
)

log = logging.getLogger(__name__)

CLAIM_POLL_SEC = 5.0
CLAIM_MAX_WAITS = 720  # an hour of waiting for the PR's other follow-up before giving up


class FollowupWalk(FollowupSteps, DeliverySteps):
    """Mixed into TicketRunner before DeliverySteps (it reuses commit, push, report, cleanup and
    finish, and the runner's gate loop)."""

    async def _gates(
        self, run: RunRef, wt: WorktreeRef, opts: RunOptions, impl: ImplementOutcome
    ) -> tuple[tuple[GateResult, ...], Usage]:
        raise NotImplementedError  # TicketRunner's own gate loop (workflow.py) is the one that runs

    if TYPE_CHECKING:  # RepoSteps' (TicketRunner mixes it in through WorkSteps); no runtime stub

        async def configure(self, run: RunRef, wt: WorktreeRef, opts: RunOptions) -> RunOptions: ...

    async def followup(self, run: RunRef, opts: RunOptions) -> str:
        ctx = await self.followup_begin(run, opts)
        if ctx.skip:
            await self.say(run, f"nothing to do: {ctx.skip}", step="followup")
            return await self.finish(run, "no_changes", None)
        for _ in range(CLAIM_MAX_WAITS):
            if await self.followup_claim(run, ctx):
                break
            await _sleep(CLAIM_POLL_SEC)  # durable: a restart resumes the wait, not the run
        else:
            return await self.finish(run, "failed", "another follow-up held the pull request for an hour")
        try:
            return await self._followup_claimed(run, opts, ctx)
        finally:
            await self.followup_release(run, ctx)

    async def _followup_claimed(self, run: RunRef, opts: RunOptions, ctx: FollowupContext) -> str:
        s = self.d.settings
        m = await (self.gather_ci(run, ctx) if ctx.kind == "ci_fix" else self.followup_review(run, ctx))
        if m.nothing:
            await self.say(run, f"nothing to do: {m.nothing}", step="followup")
            return await self.finish(run, "no_changes" if not m.flaky else "succeeded", None)
        limit = _limit(
            ctx,
            m,
            ci_max=s.followup_ci_max_rounds,
            review_max=s.followup_review_max_rounds,
            budget=s.followup_max_cost_usd,
        )
        if limit is not None:
            what, left = limit
            await self.followup_stop(run, ctx, what, left)
            return await self.finish(run, "failed", f"follow-ups stopped: {what}")
        wt: WorktreeRef | None = None
        try:
            wt, pr_diff = await self.followup_prepare(run, opts, m, ctx)
            opts = await self.configure(run, wt, opts)  # the repository's own file, as the ticket run had it
            result = await self.followup_agent(run, wt, ctx, m, opts, pr_diff)
            if not result.has_changes:
                await self.followup_answer(run, ctx, m, result, None)
                await self.cleanup(run, wt, False)
                return await self.finish(run, "no_changes", None)
            impl = ImplementOutcome(
                session_id=result.session_id,
                has_changes=True,
                summary=result.summary,
                usage=Usage(turns=result.turns, cost_usd=result.cost_usd),
            )
            await self._gates(run, wt, opts, impl)
            sha = await self.commit(run, wt)
            await self.push(run, wt)
            await self.followup_answer(run, ctx, m, result, sha)
            await self.cleanup(run, wt, False)
            return await self.finish(run, "succeeded", None)
        except StepFailed as failed:
            message = str(failed)
            await self.report(run, Report(outcome="failed", text=message))
            await self.followup_failed_note(run, ctx, message)  # the PR hears it too: nothing was pushed
            if wt is not None:
                await self.cleanup(run, wt, True)
            return await self.finish(run, "failed", message)


def _limit(
    ctx: FollowupContext, m: Materials, *, ci_max: int, review_max: int, budget: float
) -> tuple[str, str] | None:
    """Which limit ends the loop now, and what is left; None: go on."""
    if budget and ctx.cost_usd >= budget:
        return (
            f"the pull request's follow-up budget of ${budget:.2f} is spent (${ctx.cost_usd:.2f})",
            _left(m),
        )
    if m.kind == "ci_fix":
        if ctx.ci_rounds and m.signature == ctx.ci_signature:
            return (f"stagnation: the same jobs failed again after a fix ({m.signature})", _left(m))
        if ctx.ci_rounds >= ci_max:
            return f"the CI-fix round limit ({ci_max}) is reached", _left(m)
    elif ctx.review_rounds >= review_max:
        return f"the review round limit ({review_max}) is reached", _left(m)
    return None


def _left(m: Materials) -> str:
    if m.kind == "ci_fix":
        return f"failing jobs {m.signature}"
    return f"{len(m.threads)} unanswered comment(s) ({', '.join(str(t.comment_id) for t in m.threads)})"


async def _sleep(seconds: float) -> None:
    await DBOS.sleep_async(seconds)
