"""The PRs' outcomes (issue 11 item 6): per PR the result (open, merged, closed), time to merge,
CI-fix and review rounds and cost to merge; over all of them the merge rate, the first-push CI
pass rate and the cost per merged PR — the figures an operator needs to judge the service on
their own installation.

Definitions (stated so the figures can be checked by hand):
- merge rate = merged / (merged + closed unmerged); open PRs are not counted yet;
- first-push CI pass rate = PRs whose first pushed commit never got a CI-fix follow-up (no red CI
  was reported for it: no `ci_fix` run and no re-run) / all PRs with any follow-up history or
  closed; PRs still open with nothing reported count as passing so far;
- cost to merge = the opening run's cost + every follow-up's cost of that PR (model spend as the
  model proxy metered it).
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from pydantic import BaseModel

from app.followups.store import FollowupStore
from app.services.runner.tables import runs


class PrOutcome(BaseModel):
    repository: str
    number: int
    ticket: str
    html_url: str | None
    parent_run_id: str
    state: str  # open | merged | closed
    hours_to_merge: float | None
    ci_rounds: int
    review_rounds: int
    ci_fix_runs: int
    review_fix_runs: int
    cost_usd: float  # opening run + follow-ups
    stop_reason: str | None


class Outcomes(BaseModel):
    pull_requests: list[PrOutcome]
    merged: int
    closed_unmerged: int
    open: int
    merge_rate: float | None
    first_push_ci_pass_rate: float | None
    cost_per_merged_pr_usd: float | None


def outcomes(store: FollowupStore) -> Outcomes:
    prs = store.all_prs()
    out: list[PrOutcome] = []
    with store.engine.connect() as conn:
        for pr in prs:
            rows = conn.execute(
                sa.select(runs.c.kind, runs.c.cost_usd, runs.c.run_id).where(
                    sa.or_(
                        runs.c.run_id == pr.parent_run_id,
                        sa.and_(runs.c.parent_run_id == pr.parent_run_id, runs.c.pr_number == pr.number),
                    )
                )
            ).all()
            cost = sum(float(r.cost_usd or 0.0) for r in rows)
            hours = (pr.closed_at - pr.opened_at) / 3600 if pr.state == "merged" and pr.closed_at else None
            out.append(
                PrOutcome(
                    repository=pr.repository,
                    number=pr.number,
                    ticket=pr.ticket,
                    html_url=pr.html_url,
                    parent_run_id=pr.parent_run_id,
                    state=pr.state,
                    hours_to_merge=hours,
                    ci_rounds=pr.ci_rounds,
                    review_rounds=pr.review_rounds,
                    ci_fix_runs=sum(r.kind == "ci_fix" for r in rows),
                    review_fix_runs=sum(r.kind == "review_fix" for r in rows),
                    cost_usd=round(cost, 6),
                    stop_reason=pr.stop_reason,
                )
            )
    merged = [p for p in out if p.state == "merged"]
    closed = [p for p in out if p.state == "closed"]
    ended = len(merged) + len(closed)
    first_pass = [p for p in out if p.ci_fix_runs == 0 and p.ci_rounds == 0]
    return Outcomes(
        pull_requests=out,
        merged=len(merged),
        closed_unmerged=len(closed),
        open=len(out) - ended,
        merge_rate=round(len(merged) / ended, 4) if ended else None,
        first_push_ci_pass_rate=round(len(first_pass) / len(out), 4) if out else None,
        cost_per_merged_pr_usd=round(sum(p.cost_usd for p in merged) / len(merged), 6) if merged else None,
    )


async def aoutcomes(store: FollowupStore) -> Outcomes:
    return await asyncio.to_thread(outcomes, store)
