"""The spend-cap hold before a run's first real step (issue 13): `wait_while_held(run)`.

A run whose ticket's project (or all projects together) has reached a daily or monthly spend cap
does not start: its record shows `waiting` with the reason (`hold_reason`), its Jira progress
comment says so, and it checks again every SPEND_CHECK_INTERVAL_SEC. A new UTC day or month, or a
raised cap, lets it go on as `running`. The per-run budget (CLAUDE_MAX_BUDGET_USD, enforced at the
model proxy) stays as it is; a run that started below a cap may pass it by at most what it spends.

Durability: each check is a DBOS step (its answer is recorded) and the pause between checks is
`DBOS.sleep_async` (durable), so a replay walks the same loop without asking again; outside a DBOS
workflow (the fast pipeline tests) the pause is a plain sleep.
"""

from __future__ import annotations

import asyncio
import time

from dbos import DBOS

from app.services.runner.models import RunRef
from app.services.runner.record import StepBase


async def _pause(seconds: float) -> None:
    if DBOS.workflow_id is not None:
        await DBOS.sleep_async(seconds)
    else:
        await asyncio.sleep(seconds)


class HoldSteps(StepBase):
    async def wait_while_held(self, run: RunRef) -> None:
        """Return once no spend cap holds the run (at once when none is reached)."""
        reason = await self.hold_for_spend(run, False)
        while reason is not None:
            await _pause(self.d.settings.spend_check_interval_sec)
            reason = await self.hold_for_spend(run, True)

    @DBOS.step()
    async def hold_for_spend(self, run: RunRef, waited: bool) -> str | None:
        """None: the run may start now. Else why it waits (the record shows `waiting` with it).
        `waited`: the run was already waiting (a re-check)."""
        d = self.d
        if not waited and d.metrics is not None:  # wall time, not the spend clock
            row = await d.store.get_run_row(run.run_id)
            if row is not None:  # from acceptance to start, on this process's clock
                d.metrics.queue_waited(time.time() - row.created_at)
        if d.spend is None:
            return None
        reason = await d.spend.hold_reason(run.key)
        if reason is not None:
            await d.spend.set_hold(run.run_id, reason)
            if not waited:
                await self.say(run, f"run waits for spend room: {reason}", "warning", step="hold")
                self.progressed(run)
        elif waited:
            await d.spend.set_hold(run.run_id, None)
            await self.say(run, "a spend cap has room again: the run starts", step="hold")
            self.progressed(run)
        return reason


__all__ = ["HoldSteps"]
