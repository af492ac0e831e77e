"""A scripted Anthropic Messages API on 127.0.0.1 for driving the REAL Claude Code CLI offline.

Point the CLI at it with `ANTHROPIC_BASE_URL=server.url` and any non-empty `ANTHROPIC_API_KEY`.

Scripting. `server.script(Rule(...))` adds a rule; for each `POST /v1/messages` the first rule
whose `prompt_contains` / `match` fits the request answers with `turns[step]`, where `step` is the
number of assistant messages sent after the request's latest *prompt* (its last user message that
is not a tool result). So a session scripted as `[write(...), text("done")]` answers the first
request with the Write and the request carrying the tool result with "done" - and a retried request
gets the same answer (no hidden counter), which keeps retry/resume behaviour deterministic. Past the
end of `turns` the rule repeats its last turn (a model that keeps calling tools) unless
`then_stop=True`. Unmatched requests get `text("OK")`. `Turn.status`, `delay_s` and `hang` inject
errors (500/529 bodies in the API's error shape), latency and a stream that never ends;
`server.fail_next(n, status)` fails the next n requests whatever they are, and `server.enqueue(*turns)`
answers the next requests in order before any rule. String values in tool
inputs may use `{cwd}`, replaced by the working directory the CLI reported in the request.

Answers are real SSE (message_start, content_block_start, content_block_delta with
text_delta/input_json_delta, content_block_stop, message_delta with stop_reason and usage,
message_stop) for `stream: true` and a JSON message for `stream: false`. Every request (headers +
JSON body) is recorded in `server.requests`, and the `usage` each answer reported (as far as it was
sent: a hung stream reported only its message_start's) in `server.reported`, summed by kind by
`reported_usage()`. `count_tokens` answers a constant; anything else is a 404 in the API's error
shape. Binding to anything but a loopback address is refused.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

_ids = itertools.count(1)
_CWD_RE = re.compile(r"(?:Primary working directory|Working directory|cwd):\s*(\S+)")


@dataclass
class Turn:
    """One assistant answer: content blocks, or an HTTP error (`status` != 200)."""

    blocks: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str | None = None  # default: tool_use if a block is a tool_use, else end_turn
    usage: dict[str, int] = field(default_factory=lambda: {"input_tokens": 100, "output_tokens": 20})
    status: int = 200
    delay_s: float = 0.0
    hang: bool = False  # send headers and message_start, then nothing until the server stops


def text(value: str, **kw: Any) -> Turn:
    return Turn(blocks=[{"type": "text", "text": value}], **kw)


def tool(name: str, tool_input: dict[str, Any], *, say: str | None = None, **kw: Any) -> Turn:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": say}] if say else []
    blocks.append({"type": "tool_use", "name": name, "input": tool_input})
    return Turn(blocks=blocks, **kw)


def write(file_path: str, content: str, **kw: Any) -> Turn:
    return tool("Write", {"file_path": file_path, "content": content}, **kw)


def edit(file_path: str, old: str, new: str, **kw: Any) -> Turn:
    return tool("Edit", {"file_path": file_path, "old_string": old, "new_string": new}, **kw)


def read(file_path: str, **kw: Any) -> Turn:
    return tool("Read", {"file_path": file_path}, **kw)


def bash(command: str, **kw: Any) -> Turn:
    return tool("Bash", {"command": command, "description": "run a command"}, **kw)


def error(status: int = 500, **kw: Any) -> Turn:
    return Turn(status=status, **kw)


def hang() -> Turn:
    return Turn(blocks=[{"type": "text", "text": "..."}], hang=True)


@dataclass
class Rule:
    turns: list[Turn]
    prompt_contains: str | None = None
    match: Callable[[RecordedRequest], bool] | None = None
    then_stop: bool = False  # past the last turn answer "Done." instead of repeating the last turn

    def fits(self, req: RecordedRequest) -> bool:
        if self.prompt_contains is not None and self.prompt_contains not in req.prompt_text():
            return False
        return self.match is None or self.match(req)

    def turn_for(self, step: int) -> Turn:
        if step < len(self.turns):
            return self.turns[step]
        return text("Done.") if self.then_stop else self.turns[-1]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def session_id(self) -> str | None:
        """The CLI's session id for this request (header `x-claude-code-session-id`)."""
        return self.headers.get("x-claude-code-session-id")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []

    def _prompt_index(self) -> int:
        msgs = self.messages
        for i in range(len(msgs) - 1, -1, -1):
            if msgs[i].get("role") == "user" and not _blocks_of_type(msgs[i], "tool_result"):
                return i
        return -1

    def prompt_text(self) -> str:
        """Text of the latest user message that is not a tool result (the prompt of this leg)."""
        i = self._prompt_index()
        return message_text(self.messages[i]) if i >= 0 else ""

    def step(self) -> int:
        """How many assistant turns this leg has had so far."""
        i = self._prompt_index()
        return sum(1 for m in self.messages[i + 1 :] if m.get("role") == "assistant")

    def all_text(self) -> str:
        """Every text and tool-result string in the conversation (for 'was X sent?' asserts)."""
        return "\n".join(message_text(m, include_results=True) for m in self.messages)

    def tool_results(self) -> list[str]:
        return [
            _result_text(b) for m in self.messages for b in _blocks_of_type(m, "tool_result")
        ]

    def cwd(self) -> str | None:
        system = self.body.get("system") if isinstance(self.body, dict) else None
        parts = [system] if isinstance(system, str) else [
            str(b.get("text", "")) for b in system or [] if isinstance(b, dict)]
        m = _CWD_RE.search("\n".join([*parts, *(message_text(m) for m in self.messages)]))
        return m.group(1) if m else None


def _blocks_of_type(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
    return ""


def message_text(message: dict[str, Any], *, include_results: bool = False) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            parts.append(json.dumps(block.get("input", {})))
        elif include_results and block.get("type") == "tool_result":
            parts.append(_result_text(block))
    return "\n".join(parts)


class FakeAnthropicAPI:
    """The server. Use as a context manager (or `start()`/`stop()`); `url` is its base URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, model: str = "claude-fake-1") -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"refusing to bind the fake Anthropic API to non-loopback {host!r}")
        self.host, self._port, self.model = host, port, model
        self.rules: list[Rule] = []
        self.requests: list[RecordedRequest] = []
        self.reported: list[dict[str, int]] = []  # the usage of each answer, as sent
        self._faults: list[int] = []
        self._queue: list[Turn] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- scripting -----
    def script(self, *rules: Rule) -> FakeAnthropicAPI:
        with self._lock:
            self.rules.extend(rules)
        return self

    def enqueue(self, *turns: Turn) -> None:
        """Answer the next requests with these turns, in order, before any rule (then rules again)."""
        with self._lock:
            self._queue.extend(turns)

    def fail_next(self, times: int, status: int = 500) -> None:
        with self._lock:
            self._faults.extend([status] * times)

    def reset(self) -> None:
        with self._lock:
            self.rules.clear()
            self.requests.clear()
            self.reported.clear()
            self._faults.clear()
            self._queue.clear()

    def reported_usage(self) -> dict[str, int]:
        """Tokens by kind (the Messages API's usage keys) summed over every answer sent so far."""
        with self._lock:
            total: dict[str, int] = {}
            for usage in self.reported:
                for kind, n in usage.items():
                    total[kind] = total.get(kind, 0) + n
            return total

    def _answered(self, usage: dict[str, int], *, into: dict[str, int] | None = None) -> dict[str, int]:
        """Record an answer's usage (`into`: update an answer recorded before, in place, as a
        stream's message_delta does its message_start's); the recorded entry."""
        with self._lock:
            if into is None:
                into = {}
                self.reported.append(into)
            into.update(usage)
            return into

    def message_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith("/v1/messages") and "count" not in r.path]

    # ----- lifecycle -----
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> FakeAnthropicAPI:
        handler = type("Handler", (_Handler,), {"api": self})
        self._httpd = ThreadingHTTPServer((self.host, self._port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hung streams
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> FakeAnthropicAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- answering -----
    def _choose(self, req: RecordedRequest) -> Turn:
        with self._lock:
            if self._faults:
                return error(self._faults.pop(0))
            if self._queue:
                return self._queue.pop(0)
            rules = list(self.rules)
        for rule in rules:
            if rule.fits(req):
                return rule.turn_for(req.step())
        return text("OK")


class _Handler(BaseHTTPRequestHandler):
    api: FakeAnthropicAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; requests are recorded instead

    def _record(self, body: Any) -> RecordedRequest:
        req = RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with self.api._lock:
            self.api.requests.append(req)
        return req

    def _read_body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return raw.decode("utf-8", "replace")

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_fake_{next(_ids)}")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._record(None)
        self._send_json(404, _error_body(404))

    def do_HEAD(self) -> None:
        self._record(None)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = self._read_body()
        req = self._record(body)
        path = self.path.split("?", 1)[0]
        if path == "/v1/messages/count_tokens":
            self._send_json(200, {"input_tokens": 100})
            return
        if path != "/v1/messages" or not isinstance(body, dict):
            self._send_json(404, _error_body(404))
            return
        turn = self.api._choose(req)
        if turn.delay_s:
            self.api._stopping.wait(turn.delay_s)
        if turn.status != 200:
            self._send_json(turn.status, _error_body(turn.status))
            return
        message = _message(turn, req, body.get("model") or self.api.model)
        if body.get("stream"):
            self._stream(message, turn)
        else:
            self.api._answered(message["usage"])
            self._send_json(200, message)

    def _stream(self, message: dict[str, Any], turn: Turn) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            reported: dict[str, int] | None = None
            for event in _sse_events(message):
                # Recorded before the event that reports it is written: a test that has read the
                # answer finds its usage already in `reported`.
                if event.startswith("event: message_start"):
                    reported = self.api._answered({**message["usage"], "output_tokens": 1})
                elif event.startswith("event: message_delta") and reported is not None:
                    self.api._answered(message["usage"], into=reported)
                self._chunk(event)
                if turn.hang and event.startswith("event: message_start"):
                    self.api._stopping.wait()
                    return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def _chunk(self, event: str) -> None:
        data = event.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _error_body(status: int) -> dict[str, Any]:
    kind = {404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": f"scripted {status}"}}


def _fill(value: Any, cwd: str | None) -> Any:
    if isinstance(value, str) and cwd:
        return value.replace("{cwd}", cwd)
    if isinstance(value, dict):
        return {k: _fill(v, cwd) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, cwd) for v in value]
    return value


def _message(turn: Turn, req: RecordedRequest, model: str) -> dict[str, Any]:
    cwd = req.cwd()
    blocks: list[dict[str, Any]] = []
    for block in turn.blocks:
        if block["type"] == "tool_use":
            blocks.append({"type": "tool_use", "id": f"toolu_fake{next(_ids):06d}", "name": block["name"],
                           "input": _fill(block["input"], cwd)})
        else:
            blocks.append(dict(block))
    stop = turn.stop_reason or ("tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn")
    return {"id": f"msg_fake{next(_ids):06d}", "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": dict(turn.usage)}


def _sse_events(message: dict[str, Any]) -> Iterator[str]:
    def ev(name: str, data: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n"

    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None,
             "usage": {**usage, "output_tokens": 1}}
    yield ev("message_start", {"type": "message_start", "message": start})
    yield ev("ping", {"type": "ping"})
    for i, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            yield ev("content_block_start", {"type": "content_block_start", "index": i,
                                             "content_block": {**block, "input": {}}})
            raw = json.dumps(block["input"])
            for part in (raw[: len(raw) // 2], raw[len(raw) // 2 :]):  # two deltas: partial JSON is real
                yield ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                                 "delta": {"type": "input_json_delta", "partial_json": part}})
        else:
            yield ev("content_block_start", {"type": "content_block_start", "index": i,
                                             "content_block": {"type": "text", "text": ""}})
            yield ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                             "delta": {"type": "text_delta", "text": block["text"]}})
        yield ev("content_block_stop", {"type": "content_block_stop", "index": i})
    yield ev("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                               "usage": {"output_tokens": usage.get("output_tokens", 0)}})
    yield ev("message_stop", {"type": "message_stop"})


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass (for cross-thread asserts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropicAPI]:
    """A started server for one test (import this fixture into a conftest or test module)."""
    with FakeAnthropicAPI() as server:
        yield server
