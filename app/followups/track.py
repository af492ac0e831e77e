"""The pipeline's hook into follow-ups: a PR the ticket run opened is recorded as the service's.

Called by the `pull_request` step right after GitHub (or the local records) answered. It records
the PR in `ac_pull_requests` (keyed by repository and number; again: no change) and its number on
the run record, so a webhook for that PR finds the run that opened it. A run store without a SQL
engine (the in-memory one of the fast pipeline tests) has no follow-ups: nothing is recorded.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from app.followups.deps import repo_key_for
from app.followups.store import FollowupStore
from app.services.runner.tables import runs


def followup_store(deps: Any) -> FollowupStore | None:
    """The follow-up store on the run store's engine, or None (an in-memory run store)."""
    engine = getattr(getattr(deps.store, "sync", None), "engine", None)
    return FollowupStore(engine) if isinstance(engine, sa.Engine) else None


async def track_pull_request(
    deps: Any, *, ticket: str, run_id: str, branch: str, number: int, html_url: str, repository: str = ""
) -> None:
    store = followup_store(deps)
    if store is None:
        return

    def write() -> None:
        store.track(
            repo_key_for(deps, repository),
            number,
            ticket=ticket,
            branch=branch,
            parent_run_id=run_id,
            html_url=html_url,
        )
        with store.engine.begin() as conn:
            conn.execute(
                sa.update(runs)
                .where(runs.c.run_id == run_id, runs.c.pr_number.is_(None))
                .values(pr_number=number)
            )

    await asyncio.to_thread(write)
