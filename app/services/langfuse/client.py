"""Langfuse tracing: one trace per run, one observation per Claude Code session, over OTLP/HTTP.

Langfuse ingests OpenTelemetry: its SDK (langfuse 5.x) is an OTel `TracerProvider` whose exporter
posts protobuf to `{LANGFUSE_BASE_URL}/api/public/otel/v1/traces` with `Authorization: Basic
base64(pk:sk)`, and the meaning lives in `langfuse.*` span attributes. We do exactly that with the
OTel SDK directly, using Langfuse's own attribute names (`LangfuseOtelSpanAttributes`), because the
`Langfuse` client is a per-public-key process singleton: a second client with the same key (a new
app in the same process, a test) silently reuses the first one's exporter, endpoint and provider,
even after it was shut down. Our provider is private to this object (the global OTel provider is
left alone) and sends nothing but our spans.

The trace id is Langfuse's deterministic id for the run id (`Langfuse.create_trace_id(seed=run_id)`),
so the sessions of one run - implement, review, each fix, even after a crash and resume in another
process - land in one trace, and the Langfuse session is the ticket key (all runs of a ticket).

No Claude Agent SDK auto-instrumentation is used: `openinference-instrumentation-claude-agent-sdk`
exists but is ~1.4k lines plus four dependencies and injects its own hooks into the SDK options;
these explicit spans, filled from the SDK's result message, are the trace.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

from langfuse import Langfuse
from langfuse import LangfuseOtelSpanAttributes as LF
from opentelemetry import trace as otel
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import Span

from app.config import Settings
from app.errors import ConfigError

logger = logging.getLogger(__name__)

OTLP_PATH = "/api/public/otel/v1/traces"
MAX_TEXT = 4000  # chars of an error/output kept on a span; Langfuse is for reading, not archiving


class LangfuseTracer:
    """The real `Tracer`. Build it once (lifespan), `flush()` after each ticket, `shutdown()` at exit."""

    def __init__(
        self,
        settings: Settings,
        *,
        export_timeout_sec: float = 5.0,
        schedule_delay_sec: float = 5.0,
    ) -> None:
        pk, sk = settings.langfuse_public_key, settings.langfuse_secret_key
        if not settings.langfuse_enabled or pk is None or sk is None:
            raise ConfigError("Langfuse tracing needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
        public, secret = pk.get_secret_value(), sk.get_secret_value()
        credentials = base64.b64encode(f"{public}:{secret}".encode()).decode("ascii")
        self.endpoint = settings.langfuse_base_url.rstrip("/") + OTLP_PATH
        exporter = OTLPSpanExporter(
            endpoint=self.endpoint,
            headers={
                "Authorization": f"Basic {credentials}",
                "x-langfuse-public-key": public,
                "x-langfuse-sdk-name": "auto-code",
                "x-langfuse-ingestion-version": "4",  # what langfuse 5.x sends: real-time ingestion
            },
            timeout=export_timeout_sec,
            compression=Compression.Gzip,
        )
        self._flush_ms = int(export_timeout_sec * 1000)
        self._environment = settings.node_env
        self._release = settings.app_version
        resource = Resource.create({"service.name": "auto-code", "service.version": settings.app_version})
        self._provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self._provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                schedule_delay_millis=schedule_delay_sec * 1000,
                export_timeout_millis=export_timeout_sec * 1000,
            )
        )
        self._tracer = self._provider.get_tracer("auto-code")
        self._closed = False
        logger.info("langfuse_tracing_on", extra={"endpoint": self.endpoint})

    @contextlib.contextmanager
    def agent_span(self, *, ticket_key: str, run_id: str, phase: str) -> Iterator[dict[str, Any]]:
        info: dict[str, Any] = {}
        span = self._start(ticket_key, run_id, phase)
        if span is None:
            yield info
            return
        try:
            # Current span while the session runs, so any nested OTel spans join this trace.
            with otel.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                yield info
        except BaseException as exc:
            info.setdefault("error", f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._finish(span, info)

    def flush(self) -> None:
        if self._closed:
            return
        try:
            if not self._provider.force_flush(self._flush_ms):
                logger.warning("langfuse_flush_incomplete", extra={"timeout_ms": self._flush_ms})
        except Exception as exc:
            logger.warning("langfuse_flush_failed", extra={"error": type(exc).__name__})

    def shutdown(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        try:
            self._provider.shutdown()
        except Exception as exc:
            logger.warning("langfuse_shutdown_failed", extra={"error": type(exc).__name__})

    # ----- span building (never raises) -----
    def _start(self, ticket_key: str, run_id: str, phase: str) -> Span | None:
        if self._closed:
            return None
        try:
            trace_id = int(Langfuse.create_trace_id(seed=run_id), 16)
            # Like the Langfuse SDK's trace_context: a non-recording parent carrying the run's trace id.
            parent = NonRecordingSpan(
                SpanContext(trace_id=trace_id, span_id=_span_id(run_id, phase), is_remote=False,
                            trace_flags=TraceFlags(TraceFlags.SAMPLED))
            )
            attributes: dict[str, Any] = {
                LF.AS_ROOT: True,
                LF.IS_APP_ROOT: True,
                LF.TRACE_NAME: f"auto-code {ticket_key}",
                LF.TRACE_SESSION_ID: ticket_key,
                LF.TRACE_TAGS: ["auto-code", ticket_key.rsplit("-", 1)[0]],
                f"{LF.TRACE_METADATA}.ticket_key": json.dumps(ticket_key),
                f"{LF.TRACE_METADATA}.run_id": json.dumps(run_id),
                LF.OBSERVATION_TYPE: "generation",  # generation-like, so Langfuse totals usage and cost
                f"{LF.OBSERVATION_METADATA}.phase": json.dumps(phase),
                LF.ENVIRONMENT: self._environment,
                LF.RELEASE: self._release,
                "auto_code.ticket_key": ticket_key,
                "auto_code.run_id": run_id,
                "auto_code.phase": phase,
                "gen_ai.system": "anthropic",
            }
            return self._tracer.start_span(
                f"claude-code {phase}", context=otel.set_span_in_context(parent), attributes=attributes
            )
        except Exception as exc:
            logger.warning("langfuse_span_failed", extra={"error": type(exc).__name__, "phase": phase})
            return None

    def _finish(self, span: Span, info: dict[str, Any]) -> None:
        try:
            span.set_attributes(_result_attributes(info))
            if error := info.get("error"):
                span.set_status(Status(StatusCode.ERROR, str(error)[:MAX_TEXT]))
        except Exception as exc:
            logger.warning("langfuse_span_failed", extra={"error": type(exc).__name__})
        finally:
            span.end()


def _result_attributes(info: dict[str, Any]) -> dict[str, Any]:
    """Span attributes for what the caller filled in: session_id, turns, cost_usd, usage, error."""
    attrs: dict[str, Any] = {}
    if session_id := info.get("session_id"):
        attrs["auto_code.session_id"] = str(session_id)
        attrs["gen_ai.conversation.id"] = str(session_id)
        attrs[f"{LF.OBSERVATION_METADATA}.session_id"] = json.dumps(str(session_id))
    if (turns := info.get("turns")) is not None:
        attrs["auto_code.turns"] = int(turns)
        attrs[f"{LF.OBSERVATION_METADATA}.turns"] = json.dumps(int(turns))
    if (cost := info.get("cost_usd")) is not None:
        attrs["auto_code.cost_usd"] = float(cost)
        attrs[LF.OBSERVATION_COST_DETAILS] = json.dumps({"total": float(cost)})
    usage = _usage_details(info.get("usage"))
    if usage:
        attrs[LF.OBSERVATION_USAGE_DETAILS] = json.dumps(usage)
        if "input" in usage:
            attrs["gen_ai.usage.input_tokens"] = usage["input"]
        if "output" in usage:
            attrs["gen_ai.usage.output_tokens"] = usage["output"]
    if model := info.get("model"):
        attrs[LF.OBSERVATION_MODEL] = str(model)
        attrs["gen_ai.request.model"] = str(model)
    if output := info.get("output"):
        attrs[LF.OBSERVATION_OUTPUT] = str(output)[:MAX_TEXT]
    if error := info.get("error"):
        attrs[LF.OBSERVATION_LEVEL] = "ERROR"
        attrs[LF.OBSERVATION_STATUS_MESSAGE] = str(error)[:MAX_TEXT]
    return attrs


def _usage_details(usage: Any) -> dict[str, int]:
    """The SDK's usage dict as Langfuse usage_details: integer counts, input/output renamed to the
    keys Langfuse prices by; nested or non-numeric entries (server_tool_use, service_tier) dropped."""
    if not isinstance(usage, dict):
        return {}
    renamed = {"input_tokens": "input", "output_tokens": "output"}
    out: dict[str, int] = {}
    for key, value in usage.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[renamed.get(key) or key] = int(value)
    return out


def _span_id(run_id: str, phase: str) -> int:
    # Any valid (non-zero, 64-bit) id: the parent is never exported, it only carries the trace id.
    return (int(Langfuse.create_trace_id(seed=f"{run_id}/{phase}"), 16) & ((1 << 64) - 1)) or 1
