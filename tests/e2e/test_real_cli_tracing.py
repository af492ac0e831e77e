"""Tracing a real run: with Langfuse keys set and LANGFUSE_BASE_URL at a local OTLP capture server,
the run's SDK sessions are exported - before the service stops (flushed after each ticket) - as
spans carrying the ticket key and the SDK's turns; with the keys unset nothing is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import IMPLEMENT, fix_marker
from tests.fakes.anthropic_api import FakeAnthropicAPI, Rule, edit, text, write
from tests.fakes.otlp_capture import OtlpCapture

pytestmark = pytest.mark.real_cli

LANGFUSE_SECRET = "sk-lf-e2e-secret-7a3b"


@pytest.fixture
def otlp():
    with OtlpCapture() as capture:
        yield capture


def _script(model: FakeAnthropicAPI) -> None:
    model.script(
        Rule(prompt_contains=IMPLEMENT, turns=[write("{cwd}/notes.md", "hi   \n"), text("Added notes.")]),
        Rule(prompt_contains=fix_marker("lint"), turns=[
            edit("{cwd}/notes.md", "hi   \n", "hi\n"), text("Fixed the spaces.")]),
    )


def test_a_run_exports_its_sessions_with_ticket_and_turns(e2e, model, otlp: OtlpCapture) -> None:
    _script(model)
    with e2e(ENABLE_LINT=1, LANGFUSE_PUBLIC_KEY="pk-lf-e2e", LANGFUSE_SECRET_KEY=LANGFUSE_SECRET,
             LANGFUSE_BASE_URL=otlp.base_url) as svc:
        run = svc.run("PROJ-50")
        # No waiting: the run shows as ended only after its spans were flushed.
        spans = list(otlp.spans)
    assert run["status"] == "succeeded", run["error"]
    by_phase = {s.attributes["auto_code.phase"]: s for s in spans}
    assert set(by_phase) >= {"implement", "fix:lint"}
    implement = by_phase["implement"].attributes
    assert implement["auto_code.ticket_key"] == "PROJ-50"
    assert implement["auto_code.run_id"] == run["run_id"]
    assert implement["auto_code.turns"] == 2
    assert implement["auto_code.session_id"] == run["session_id"]
    assert by_phase["fix:lint"].attributes["auto_code.session_id"] == run["session_id"]  # resumed
    assert len({s.trace_id for s in spans}) == 1  # one trace per run
    assert all(LANGFUSE_SECRET not in str(r.headers) for r in otlp.requests)  # basic auth, encoded


def test_without_keys_nothing_is_sent_and_the_run_succeeds(e2e, model, otlp: OtlpCapture,
                                                           tmp_path: Path) -> None:
    _script(model)
    with e2e(ENABLE_LINT=1, LANGFUSE_BASE_URL=otlp.base_url) as svc:
        run = svc.run("PROJ-51")
    assert run["status"] == "succeeded", run["error"]
    assert otlp.requests == [] and otlp.spans == []
