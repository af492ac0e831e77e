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
check the Authorization header. `inject(status, times)` answers the next exports with an error.
"""

from __future__ import annotations

import gzip
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


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


class OtlpCapture:
    def __init__(self) -> None:
        self.spans: list[CapturedSpan] = []
        self.requests: list[CapturedRequest] = []
        self._fail: list[int] = []  # statuses to answer the next exports with
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def start(self) -> OtlpCapture:
        handler = type("Handler", (_Handler,), {"capture": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # A short poll interval so stop() returns in ~50 ms instead of the default 0.5 s.
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> OtlpCapture:
        return self if self._httpd else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start() the capture server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    url = base_url

    def inject(self, status: int, times: int = 1) -> None:
        with self.lock:
            self._fail.extend([status] * times)

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
            if self._fail:
                return self._fail.pop(0)  # refused: the spans are not kept
            self.spans.extend(spans)
        return 200


class _Handler(BaseHTTPRequestHandler):
    capture: OtlpCapture
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if not path.endswith("/v1/traces"):
            status = 404
        else:
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status = self.capture.record(path, headers, body)
            except Exception:  # a body we cannot decode is the client's bug: say so like a collector
                status = 400
        data = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
