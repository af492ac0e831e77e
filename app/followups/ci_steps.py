"""What a `ci_fix` follow-up gathers: the failing jobs on the PR's head, after one re-run of each
failed Actions job on that commit to tell flaky from broken (`followup_ci`).

The step keeps its recorded name `FollowupSteps.followup_ci` (see step_base.py).
"""

from __future__ import annotations

import asyncio

from dbos import DBOS

from app.errors import AutoCodeError
from app.followups.models import FollowupContext, Materials
from app.followups.step_base import FollowupStepBase
from app.services.github.activity_base import CheckJob, PullActivity
from app.services.runner.errors import StepFailed
from app.services.runner.models import RunRef

RERUN_POLL_SEC = 10.0
RERUN_WAIT_SEC = 1800.0  # a re-run that has not finished in 30 min is treated as failed


class CiSteps(FollowupStepBase):
    @DBOS.step(name="FollowupSteps.followup_ci", preemptible=True)
    async def followup_ci(self, run: RunRef, ctx: FollowupContext) -> Materials:
        """The failing jobs on the PR's head. A failed Actions job not yet re-run on this commit is
        re-run once first; one that then passes is flaky (reported, not fixed)."""
        fu = self.fu
        api, sha = fu.activity(ctx.repository), ctx.head_sha  # the PR's own repository's client
        assert api is not None  # begin skips otherwise
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
                    failed = await self._after_reruns(api, sha, failed, rerun)
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

    async def _after_reruns(
        self, api: PullActivity, sha: str, failed: list[CheckJob], rerun: list[CheckJob]
    ) -> list[CheckJob]:
        """Poll until every re-run job has a newer finished attempt; the failing jobs after that."""
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
