"""A local OTLP/HTTP trace collector on 127.0.0.1 that records spans (stands in for Langfuse).

    with OtlpCapture().start() as otlp:
        settings = Settings(LANGFUSE_BASE_URL=otlp.base_url, LANGFUSE_PUBLIC_KEY=..., ...)
        ...
        [span] = otlp.wait_for_spans(1)
        assert span.attributes["auto_code.ticket_key"] == "PROJ-1"

Accepts `POST <any path ending in /v1/traces>` (Langfuse's is `/api/public/otel/v1/traces`) with a
protobuf `ExportTraceServiceRequest`, gzip-compressed or not, decodes it with opentelemetry-proto and
keeps every span as a `CapturedSpan` (name, hex ids, attributes as Python values, status, scope,
resource attributes). Each request is kept in `requests` (path, headers, span count) so tests can
check the Authorization header. `inject(status, times=)` answers the next exports with an error.
"""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.fakes.loopback import LoopbackHandler, LoopbackServer


@dataclass
class CapturedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    scope: str
    resource: dict[str, Any] = field(default_factory=dict)


@dataclass
class CapturedRequest:
    path: str
    headers: dict[str, str]
    span_count: int


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


class _Handler(LoopbackHandler):
    fake: OtlpCapture

    def do_POST(self) -> None:
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        if not path.endswith("/v1/traces"):
            status = 404
        else:
            try:
                status = self.fake.record(path, self.lower_headers(), body)
            except Exception:  # a body we cannot decode is the client's bug: say so like a collector
                status = 400
        data = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
        self.send_bytes(status, data, "application/x-protobuf")


class OtlpCapture(LoopbackServer):
    handler = _Handler

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[CapturedSpan] = []
        self.requests: list[CapturedRequest] = []

    def wait_for_spans(self, count: int = 1, timeout: float = 5.0) -> list[CapturedSpan]:
        """The spans received once there are at least `count` (or whatever arrived by `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.spans) >= count:
                    return list(self.spans)
            time.sleep(0.02)
        with self.lock:
            return list(self.spans)

    def record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans: list[CapturedSpan] = []
        for rs in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append(CapturedSpan(
                        name=s.name,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        attributes={kv.key: _value(kv.value) for kv in s.attributes},
                        status_code=s.status.code,
                        status_message=s.status.message,
                        scope=ss.scope.name,
                        resource=resource,
                    ))
        with self.lock:
            self.requests.append(CapturedRequest(path, headers, len(spans)))
            if (fault := self.take_fault("POST", path)) is not None:
                return fault[0]  # refused: the spans are not kept
            self.spans.extend(spans)
        return 200
