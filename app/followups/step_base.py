"""The base of the follow-up step mixins (steps.py composes them into `FollowupSteps`): `self.fu`,
the follow-up collaborators, beside the runner's own `self.d` and step recording (`StepBase`).

Why the moved steps name themselves: DBOS records a step by its `__qualname__` ("Class.method") and
a replay that meets another name fails (DBOSUnexpectedStepError). Every follow-up step was first
defined on `FollowupSteps`, so a step defined on one of the mixins passes
`name="FollowupSteps.<method>"` to `@DBOS.step`, and in-flight runs replay unchanged.
"""

from __future__ import annotations

from app.followups.deps import FollowupDeps, followup_deps
from app.services.runner.record import StepBase


class FollowupStepBase(StepBase):
    @property
    def fu(self) -> FollowupDeps:
        return followup_deps(self.d)
