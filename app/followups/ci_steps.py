"""What a `ci_fix` follow-up gathers: the failing jobs on the PR's head, after one re-run of each
failed Actions job on that commit to tell flaky from broken (`gather_ci`, which the walk calls).

Durability: the wait for the re-runs is not held inside one step. `followup_ci` re-runs the jobs and
returns what it re-ran (DBOS records it); `followup_ci_check` steps look at the commit's jobs, with a
durable `DBOS.sleep_async` between them; `followup_ci_result` turns the last recorded look into the
`Materials` and the `followup` row's detail. A restart during the wait replays the same loop from
the records: the re-runs are not asked for again (the PR's `add_rerun` record would now refuse them)
and the run goes on waiting for the same re-runs, as app/services/runner/hold.py does for spend.

`followup_ci` returns `Materials` at once when it re-ran nothing, which is also what a run recorded
by the single-step version (before this split) holds at that position: such a run replays unchanged.
Every step keeps or takes a recorded name `FollowupSteps.<method>` (see step_base.py).

What is still not covered: a crash inside `followup_ci` itself, after a job's re-run is recorded
with `add_rerun` and before DBOS records the step (milliseconds), replays the step with the re-run
already taken: that job is then not re-run again and counts as failing.
"""

from __future__ import annotations

from dbos import DBOS

from app.errors import AutoCodeError
from app.followups.models import FollowupContext, Materials
from app.followups.step_base import FollowupStepBase
from app.services.github.activity_base import CheckJob, PullActivity
from app.services.runner.errors import StepFailed
from app.services.runner.models import Frozen, RunRef

RERUN_POLL_SEC = 10.0
RERUN_WAIT_SEC = 1800.0  # a re-run that has not finished in 30 min is treated as failed


class CiReruns(Frozen):
    """What `followup_ci` saw and did when it re-ran jobs (a recorded step output: plain values)."""

    failed: tuple[CheckJob, ...]  # the failed jobs on the commit, before the re-runs
    rerun: tuple[CheckJob, ...]  # the ones it asked GitHub to run again (their attempt then)


class CiCheck(Frozen):
    """One look at the commit's jobs while the re-runs go: every completed job, and whether each
    re-run job has a newer finished attempt."""

    jobs: tuple[CheckJob, ...]
    done: bool


class CiSteps(FollowupStepBase):
    async def gather_ci(self, run: RunRef, ctx: FollowupContext) -> Materials:
        """The failing jobs on the PR's head. A failed Actions job not yet re-run on this commit is
        re-run once first and waited for (every RERUN_POLL_SEC, up to RERUN_WAIT_SEC); one that then
        passes is flaky (reported, not fixed). Deterministic given the step outputs (module docstring)."""
        first = await self.followup_ci(run, ctx)
        if isinstance(first, Materials):  # nothing re-run (or recorded by the single-step version)
            return first
        waited = 0.0
        check = await self.followup_ci_check(run, ctx, first)
        while not check.done and waited < RERUN_WAIT_SEC:
            await DBOS.sleep_async(RERUN_POLL_SEC)  # durable: a replay sleeps only what is left
            waited += RERUN_POLL_SEC
            check = await self.followup_ci_check(run, ctx, first)
        return await self.followup_ci_result(run, ctx, first, check.jobs)

    @DBOS.step(name="FollowupSteps.followup_ci", preemptible=True)
    async def followup_ci(self, run: RunRef, ctx: FollowupContext) -> Materials | CiReruns:
        """The failed jobs on the head, and the re-run of each failed Actions job not yet re-run on
        this commit (`add_rerun`: once per commit, across runs). Nothing re-run: the Materials (and
        the row's detail) at once; else what was re-run, for the checks that wait for it."""
        fu = self.fu
        api, sha = self._api(ctx), ctx.head_sha
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
            except AutoCodeError as exc:
                raise StepFailed("followup", exc.detail) from None
            if not rerun:
                m, row.detail = _materials(sha, failed, [])
                return m
            await self.say(
                run, f"re-running {', '.join(j.name for j in rerun)} once (flaky or broken?)", step="followup"
            )
        return CiReruns(failed=tuple(failed), rerun=tuple(rerun))

    @DBOS.step(name="FollowupSteps.followup_ci_check", preemptible=True)
    async def followup_ci_check(self, run: RunRef, ctx: FollowupContext, reruns: CiReruns) -> CiCheck:
        """One look at the head's jobs: done once every re-run job has a finished attempt newer than
        the one that was re-run. No row is touched unless GitHub fails (then the row says why)."""
        try:
            jobs = await self._api(ctx).check_jobs(ctx.head_sha)
        except AutoCodeError as exc:
            async with self.row(run, "followup", begin=False, end=False):
                raise StepFailed("followup", exc.detail) from None
        latest = {j.name: j for j in jobs}
        done = all(j.name in latest and latest[j.name].attempt > j.attempt for j in reruns.rerun)
        return CiCheck(jobs=tuple(jobs), done=done)

    @DBOS.step(name="FollowupSteps.followup_ci_result")
    async def followup_ci_result(
        self, run: RunRef, ctx: FollowupContext, reruns: CiReruns, jobs: tuple[CheckJob, ...]
    ) -> Materials:
        """The Materials from the last recorded look (`jobs`): a re-run job still failing, or with no
        newer finished attempt (the wait ran out), is failing; one that passed is flaky."""
        latest = {j.name: j for j in jobs}
        want = {j.name: j.attempt for j in reruns.rerun}
        failing = [
            latest.get(j.name, j)
            for j in reruns.failed
            if j.name not in want
            or latest.get(j.name, j).failed
            or latest.get(j.name, j).attempt <= want[j.name]
        ]
        async with self.row(run, "followup", begin=False, end=False) as row:
            m, row.detail = _materials(ctx.head_sha, failing, list(reruns.rerun))
        return m

    def _api(self, ctx: FollowupContext) -> PullActivity:
        api = self.fu.activity(ctx.repository)  # the PR's own repository's client
        assert api is not None  # begin skips otherwise
        return api


def _materials(
    sha: str, failed: list[CheckJob], rerun: list[CheckJob]
) -> tuple[Materials, dict[str, object]]:
    """The Materials of the failing jobs after the re-runs, and the `followup` row's detail."""
    flaky = tuple(sorted({j.name for j in rerun} - {j.name for j in failed}))
    nothing = None
    if not failed:
        nothing = (
            f"flaky: {', '.join(flaky)} passed on one re-run, nothing to fix"
            if flaky
            else f"CI is not failing on {sha[:12]}"
        )
    signature = ",".join(sorted({j.name for j in failed}))
    detail: dict[str, object] = {
        "failing": [j.name for j in failed],
        "rerun": [j.name for j in rerun],
        "flaky": list(flaky),
        "signature": signature,
        **({"nothing": nothing} if nothing else {}),
    }
    m = Materials(kind="ci_fix", jobs=tuple(failed), signature=signature, flaky=flaky, nothing=nothing)
    return m, detail
