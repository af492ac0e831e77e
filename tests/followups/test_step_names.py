"""The names DBOS records for the follow-up steps. DBOS checks each recorded step's name on replay
(DBOSUnexpectedStepError), so splitting `FollowupSteps` into mixins (app/followups/step_base.py)
must leave every step recorded as `FollowupSteps.<method>`: in-flight runs replay unchanged."""

from __future__ import annotations

import app.followups  # noqa: F401 - the runner package first (see app/followups/__init__.py)
from app.followups.steps import FollowupSteps
from app.services.runner.workflow import TicketRunner

STEPS = (
    "followup_begin",
    "followup_claim",
    "followup_release",
    "followup_ci",
    "followup_ci_check",
    "followup_ci_result",
    "followup_review",
    "followup_prepare",
    "followup_agent",
    "followup_answer",
    "followup_failed_note",
    "followup_stop",
)


def test_every_followup_step_keeps_its_recorded_name() -> None:
    recorded = {
        name: getattr(getattr(TicketRunner, name), "dbos_function_name", None)
        for name in dir(TicketRunner)
        if name.startswith("followup_")
    }
    assert recorded == {name: f"FollowupSteps.{name}" for name in STEPS}


def test_the_walk_still_mixes_in_one_followup_steps() -> None:
    assert issubclass(TicketRunner, FollowupSteps)
