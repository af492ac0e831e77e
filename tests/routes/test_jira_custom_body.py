"""The README's warning, through the real app: a custom body (an Automation rule's own JSON) that
imitates the system webhook's format - `"webhookEvent": "jira:issue_updated"` without a
`changelog` - never starts work, even when the issue it carries has the trigger label and status;
the same body without `webhookEvent` is the rule's choice and starts work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.intake.webhook_client import post, runs, service

TRIGGERS = {"TRIGGER_LABEL": "auto-code", "TRIGGER_STATUS": "Ready for AI"}


def custom_body(key: str) -> dict[str, Any]:
    """What a rule author might write by hand, the issue already carrying both triggers."""
    return {"issue": {"key": key, "fields": {"summary": "Export the report as CSV", "labels": ["auto-code"],
                                             "status": {"name": "Ready for AI"}}}}


@pytest.mark.parametrize(("env", "why"), [
    (TRIGGERS, "update does not match the trigger (status -> Ready for AI or label auto-code added)"),
    ({}, "TRIGGER_STATUS or TRIGGER_LABEL"),
], ids=["triggers-set", "no-triggers"])
def test_a_body_imitating_the_system_webhook_without_a_changelog_never_starts_work(
        tmp_path: Path, env: dict[str, str], why: str) -> None:
    with service(tmp_path, **env) as tc:
        imitated = post(tc, {"webhookEvent": "jira:issue_updated", **custom_body("PROJ-71")})
        plain = post(tc, custom_body("PROJ-72"))  # the rule's own body, webhookEvent left out
        assert imitated.status_code == 202 and imitated.json()["status"] == "ignored", imitated.text
        assert why in imitated.json()["reason"]
        assert runs(tc, "PROJ-71") == []
        assert plain.status_code == 202 and plain.json()["status"] == "queued", plain.text
        assert [r["ticket"] for r in runs(tc, "PROJ-72")] == ["PROJ-72"]
