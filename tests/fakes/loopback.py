"""The shared plumbing of the local fake servers: a threaded HTTP server on 127.0.0.1 (free port).

A fake subclasses `LoopbackServer`, sets `handler` to its `LoopbackHandler` subclass and calls
`super().__init__()`; each request's handler sees the fake as `self.fake`.

    with MyFake().start() as fake:     # or just `with MyFake() as fake:`
        client(base_url=fake.base_url)

- lifecycle: `start()` (returns self), `stop()` (idempotent), context manager, `base_url`/`url`
  (`http://127.0.0.1:<port><prefix>`; `prefix` is "" unless the fake sets one).
- scripted failures: `inject(status, times=, headers=, body=, method=, path_contains=)` queues a
  `Fault`; the fake's request code calls `take_fault(method, path)` (with `lock` held) first, which
  answers the oldest matching fault still due (body `fault_body(status)` unless one was given;
  the default is GitHub's shape `{"message": "injected <status>"}`).
- `LoopbackHandler`: HTTP/1.1, silent, with `read_body`/`read_json`/`lower_headers` and
  `send_bytes`/`send_json` replies.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


@dataclass
class Fault:
    status: int
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    method: str | None = None
    path_contains: str | None = None

    def fits(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


class LoopbackHandler(BaseHTTPRequestHandler):
    fake: Any  # the LoopbackServer serving this request (bound per server by start())
    protocol_version = "HTTP/1.1"
    json_content_type = "application/json"

    def log_message(self, format: str, *args: Any) -> None:
        return None  # keep test output clean

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def read_json(self) -> Any:
        """The request's JSON body; None when empty or not JSON (the fake then answers its own 4xx)."""
        raw = self.read_body()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def lower_headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items()}

    def send_bytes(
        self, status: int, data: bytes, content_type: str | None, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        """`payload` as JSON; None sends an empty body without a Content-Type (like a 204)."""
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_bytes(status, data, self.json_content_type if data else None, extra)


class LoopbackServer:
    handler: ClassVar[type[LoopbackHandler]]
    prefix: str = ""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # ----- lifecycle -----
    def start(self) -> Self:
        handler = type("Handler", (self.handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # A short poll interval so stop() returns in ~50 ms instead of the default 0.5 s.
        threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), daemon=True, name=type(self).__name__
        ).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self if self._httpd else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{self.prefix}"

    url = base_url

    # ----- scripted failures -----
    def inject(
        self,
        status: int,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        body: Any = None,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next `times` matching requests with `status` (body default: `fault_body`)."""
        with self.lock:
            self.faults.append(Fault(status, times, headers or {}, body, method, path_contains))

    def take_fault(self, method: str, path: str) -> tuple[int, dict[str, str], Any] | None:
        """The (status, headers, body) of the oldest due fault matching the request, counting it
        used; None when none matches. Call with `lock` held."""
        for fault in self.faults:
            if fault.times > 0 and fault.fits(method, path):
                fault.times -= 1
                body = fault.body if fault.body is not None else self.fault_body(fault.status)
                return fault.status, fault.headers, body
        return None

    def fault_body(self, status: int) -> Any:
        """The body of an injected failure given no body of its own (fakes use their API's shape)."""
        return {"message": f"injected {status}"}
