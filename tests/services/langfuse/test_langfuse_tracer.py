"""LangfuseTracer exporting to a local OTLP capture server; NoopTracer; the tracer factory."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from langfuse import Langfuse

from app.config import Settings
from app.services.langfuse import (
    LangfuseTracer,
    NoopTracer,
    build_tracer,
)
from tests.fakes.otlp_capture import OtlpCapture
from tests.fakes.tracer import RecordingTracer

PUBLIC = "pk-lf-test-public"
SECRET = "sk-lf-SECRET-never-log-0123456789"
USAGE = {
    "input_tokens": 1200, "output_tokens": 340, "cache_read_input_tokens": 800,
    "server_tool_use": {"web_search_requests": 0}, "service_tier": "standard",
}


@pytest.fixture
def otlp() -> Iterator[OtlpCapture]:
    with OtlpCapture().start() as capture:
        yield capture


def settings_for(base_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "LANGFUSE_PUBLIC_KEY": PUBLIC,
        "LANGFUSE_SECRET_KEY": SECRET,
        "LANGFUSE_BASE_URL": base_url,
        "WORKSPACE_DIR": str(tmp_path),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def tracer(otlp: OtlpCapture, tmp_path: Path) -> Iterator[LangfuseTracer]:
    t = LangfuseTracer(settings_for(otlp.base_url, tmp_path))
    yield t
    t.shutdown()


class TestExport:
    def test_a_session_span_carries_ticket_run_phase_turns_cost_and_usage(
        self, tracer: LangfuseTracer, otlp: OtlpCapture
    ) -> None:
        with tracer.agent_span(ticket_key="PROJ-7", run_id="PROJ-7:abc", phase="implement") as info:
            info.update(session_id="sess-1", turns=6, cost_usd=0.42, usage=USAGE)
        tracer.flush()

        [span] = otlp.wait_for_spans(1)
        a = span.attributes
        assert span.name == "claude-code implement"
        assert (a["auto_code.ticket_key"], a["auto_code.run_id"], a["auto_code.phase"]) == (
            "PROJ-7", "PROJ-7:abc", "implement"
        )
        assert a["auto_code.turns"] == 6 and a["auto_code.cost_usd"] == pytest.approx(0.42)
        assert a["auto_code.session_id"] == "sess-1"
        # Langfuse's own attributes: the ticket is the Langfuse session, usage and cost are totals.
        assert a["session.id"] == "PROJ-7" and a["langfuse.trace.name"] == "auto-code PROJ-7"
        assert a["langfuse.observation.type"] == "generation"
        assert json.loads(a["langfuse.observation.usage_details"]) == {
            "input": 1200, "output": 340, "cache_read_input_tokens": 800
        }
        assert json.loads(a["langfuse.observation.cost_details"]) == {"total": 0.42}
        assert json.loads(a["langfuse.observation.metadata.turns"]) == 6
        assert span.trace_id == Langfuse.create_trace_id(seed="PROJ-7:abc")
        assert span.status_code != 2

    def test_export_goes_to_langfuse_otlp_path_with_basic_auth(
        self, tracer: LangfuseTracer, otlp: OtlpCapture
    ) -> None:
        with tracer.agent_span(ticket_key="PROJ-1", run_id="PROJ-1:r", phase="review"):
            pass
        tracer.flush()
        otlp.wait_for_spans(1)
        [request] = otlp.requests
        assert request.path == "/api/public/otel/v1/traces"
        expected = "Basic " + base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
        assert request.headers["authorization"] == expected
        assert request.headers["x-langfuse-public-key"] == PUBLIC

    def test_the_sessions_of_one_run_share_one_trace(self, tracer: LangfuseTracer, otlp: OtlpCapture) -> None:
        for phase in ("implement", "review", "fix:lint"):
            with tracer.agent_span(ticket_key="PROJ-2", run_id="PROJ-2:x", phase=phase) as info:
                info["turns"] = 1
        with tracer.agent_span(ticket_key="PROJ-3", run_id="PROJ-3:y", phase="implement"):
            pass
        tracer.flush()
        spans = otlp.wait_for_spans(4)
        by_run = {s.attributes["auto_code.run_id"]: s.trace_id for s in spans}
        assert len({s.trace_id for s in spans if s.attributes["auto_code.run_id"] == "PROJ-2:x"}) == 1
        assert by_run["PROJ-2:x"] != by_run["PROJ-3:y"]
        phases = sorted(s.attributes["auto_code.phase"] for s in spans)
        assert phases == ["fix:lint", "implement", "implement", "review"]

    def test_an_error_in_the_session_is_recorded_and_still_raised(
        self, tracer: LangfuseTracer, otlp: OtlpCapture
    ) -> None:
        with pytest.raises(TimeoutError):
            with tracer.agent_span(ticket_key="PROJ-4", run_id="PROJ-4:z", phase="implement") as info:
                info["turns"] = 3
                raise TimeoutError("claude timed out after 1800 s")
        tracer.flush()
        [span] = otlp.wait_for_spans(1)
        assert span.status_code == 2 and "claude timed out" in span.status_message
        assert span.attributes["langfuse.observation.level"] == "ERROR"
        assert span.attributes["auto_code.turns"] == 3

    def test_a_failing_backend_never_raises_and_never_logs_the_secret(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        with OtlpCapture().start() as otlp:
            otlp.inject(401, times=5)
            tracer = LangfuseTracer(settings_for(otlp.base_url, tmp_path), export_timeout_sec=1.0)
            with tracer.agent_span(ticket_key="PROJ-5", run_id="PROJ-5:q", phase="implement") as info:
                info.update(turns=2, usage={"input_tokens": 5})
            tracer.flush()
            tracer.shutdown()
            assert otlp.requests and otlp.spans == []  # it tried; the backend refused
        dead = LangfuseTracer(settings_for("http://127.0.0.1:9", tmp_path), export_timeout_sec=0.5)
        with dead.agent_span(ticket_key="PROJ-5", run_id="PROJ-5:q", phase="review"):
            pass
        dead.shutdown()
        dead.flush()  # after shutdown: still harmless
        assert caplog.records
        for record in caplog.records:
            assert SECRET not in record.getMessage() and SECRET not in str(record.__dict__)
        encoded = base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
        assert encoded not in caplog.text


class TestWithoutKeys:
    def test_nothing_is_sent_and_nothing_fails(self, otlp: OtlpCapture, tmp_path: Path) -> None:
        settings = settings_for(otlp.base_url, tmp_path, LANGFUSE_PUBLIC_KEY=None, LANGFUSE_SECRET_KEY=None)
        tracer = build_tracer(settings)
        assert isinstance(tracer, NoopTracer)
        with tracer.agent_span(ticket_key="PROJ-6", run_id="PROJ-6:n", phase="implement") as info:
            info.update(session_id="s", turns=1, cost_usd=0.1, usage=USAGE)
        tracer.flush()
        tracer.shutdown()
        assert otlp.wait_for_spans(1, timeout=0.3) == [] and otlp.requests == []

    def test_one_key_alone_is_not_enough(self, otlp: OtlpCapture, tmp_path: Path) -> None:
        settings = settings_for(otlp.base_url, tmp_path, LANGFUSE_SECRET_KEY=None)
        assert isinstance(build_tracer(settings), NoopTracer)


def test_factory_builds_a_new_langfuse_tracer_per_call(otlp: OtlpCapture, tmp_path: Path) -> None:
    # No factory cache: a second service lifetime must not get the first one's (shut down) tracer.
    settings = settings_for(otlp.base_url, tmp_path)
    tracer = build_tracer(settings)
    again = build_tracer(settings)
    assert isinstance(tracer, LangfuseTracer) and again is not tracer
    again.shutdown()
    assert tracer.endpoint == f"{otlp.base_url}/api/public/otel/v1/traces"
    tracer.shutdown()


def test_recording_tracer_keeps_the_filled_fields() -> None:
    tracer = RecordingTracer()
    with tracer.agent_span(ticket_key="PROJ-8", run_id="PROJ-8:r", phase="fix:test") as info:
        info["turns"] = 4
    with pytest.raises(ValueError), tracer.agent_span(ticket_key="PROJ-8", run_id="PROJ-8:r", phase="review"):
        raise ValueError("bad review output")
    assert tracer.spans[0] == {"ticket_key": "PROJ-8", "run_id": "PROJ-8:r", "phase": "fix:test", "turns": 4}
    assert tracer.spans[1]["error"] == "ValueError: bad review output"
