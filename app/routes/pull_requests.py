"""`GET /pull-requests`: the PRs the service opened, their outcomes and the figures over them
(merge rate, first-push CI pass rate, cost per merged PR; app/followups/outcomes.py). Operator
auth like the runs API."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api.dependencies import OperatorDep
from app.followups.outcomes import Outcomes, aoutcomes
from app.followups.wiring import followups_of

router = APIRouter(dependencies=[OperatorDep])


@router.get("/pull-requests")
async def pull_requests(request: Request) -> Outcomes:
    return await aoutcomes(followups_of(request.app).store)
