"""The scripted Messages API itself: SSE shape, scripting by prompt and step, faults, recording,
loopback-only binding. (The real CLI against it: tests/services/claude_code/test_claude_sdk_client.py.)"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.anthropic_api import (
    FakeAnthropicAPI,
    Rule,
    Turn,
    bash,
    error,
    hang,
    text,
    write,
)


@pytest.fixture
def api() -> Iterator[FakeAnthropicAPI]:
    with FakeAnthropicAPI() as server:
        yield server


HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}


def body(prompt: str, *, stream: bool = True, history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    first = {
        "role": "user",
        "content": [
            {"type": "text", "text": "<system-reminder>x</system-reminder>"},
            {"type": "text", "text": prompt},
        ],
    }
    return {
        "model": "claude-x",
        "max_tokens": 100,
        "stream": stream,
        "messages": [first, *(history or [])],
        "system": [{"type": "text", "text": "Primary working directory: /tmp/wt-1"}],
    }


def sse_events(resp: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in resp.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def post(server: FakeAnthropicAPI, payload: dict[str, Any], timeout: float = 5.0) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/messages?beta=true", json=payload, headers=HEADERS, timeout=timeout)


class TestStreaming:
    def test_tool_use_is_streamed_as_real_sse(self, api: FakeAnthropicAPI) -> None:
        api.script(Rule(prompt_contains="do it", turns=[write("{cwd}/a.txt", "hi", say="writing")]))
        resp = post(api, body("please do it"))
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp)
        names = [name for name, _ in events]
        assert names[0] == "message_start" and names[-1] == "message_stop"
        assert names[-2] == "message_delta"
        assert names.count("content_block_start") == 2 == names.count("content_block_stop")
        partial = "".join(
            d["delta"]["partial_json"]
            for n, d in events
            if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
        )
        assert json.loads(partial) == {"file_path": "/tmp/wt-1/a.txt", "content": "hi"}  # {cwd} filled
        texts = [
            d["delta"]["text"]
            for n, d in events
            if n == "content_block_delta" and d["delta"]["type"] == "text_delta"
        ]
        assert texts == ["writing"]
        delta = events[-2][1]
        assert delta["delta"]["stop_reason"] == "tool_use"
        assert delta["usage"]["output_tokens"] == 20

    def test_non_streaming_answer_is_one_message(self, api: FakeAnthropicAPI) -> None:
        api.script(Rule(turns=[text("hello")]))
        msg = post(api, body("anything", stream=False)).json()
        assert msg["type"] == "message" and msg["role"] == "assistant"
        assert msg["content"] == [{"type": "text", "text": "hello"}]
        assert msg["stop_reason"] == "end_turn" and msg["usage"]["input_tokens"] == 100

    def test_unmatched_request_gets_ok(self, api: FakeAnthropicAPI) -> None:
        msg = post(api, body("unscripted", stream=False)).json()
        assert msg["content"][0]["text"] == "OK"


class TestScripting:
    def test_step_counts_assistant_turns_since_the_prompt(self, api: FakeAnthropicAPI) -> None:
        api.script(Rule(prompt_contains="go", turns=[bash("ls"), text("second"), text("third")]))
        first = post(api, body("go", stream=False)).json()
        assert first["content"][0]["name"] == "Bash"
        tool_id = first["content"][0]["id"]
        history = [
            {"role": "assistant", "content": first["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "a\nb"}]},
        ]
        second = post(api, body("go", stream=False, history=history)).json()
        assert second["content"][0]["text"] == "second"
        # A retry of the same request gets the same answer: no hidden counter.
        again = post(api, body("go", stream=False, history=history)).json()
        assert again["content"][0]["text"] == "second"
        recorded = api.message_requests()[1]
        assert recorded.step() == 1 and recorded.tool_results() == ["a\nb"]
        assert "go" in recorded.prompt_text()

    def test_a_new_prompt_in_a_resumed_conversation_restarts_the_steps(self, api: FakeAnthropicAPI) -> None:
        api.script(
            Rule(prompt_contains="first", turns=[text("one")]),
            Rule(prompt_contains="fix it", turns=[text("fixed")]),
        )
        history = [
            {"role": "assistant", "content": [{"type": "text", "text": "one"}]},
            {"role": "user", "content": [{"type": "text", "text": "now fix it"}]},
        ]
        msg = post(api, body("first", stream=False, history=history)).json()
        assert msg["content"][0]["text"] == "fixed"
        assert "first" in api.requests[-1].all_text()

    def test_past_the_script_the_last_turn_repeats_or_stops(self, api: FakeAnthropicAPI) -> None:
        rule = Rule(turns=[bash("ls")])
        stop = Rule(turns=[bash("ls")], then_stop=True)
        assert rule.turn_for(5).blocks[0]["name"] == "Bash"
        assert stop.turn_for(5).blocks[0]["text"] == "Done."

    def test_match_predicate_sees_the_request(self, api: FakeAnthropicAPI) -> None:
        api.script(Rule(match=lambda r: r.body.get("model") == "special", turns=[text("special")]))
        payload = body("x", stream=False) | {"model": "special"}
        assert post(api, payload).json()["content"][0]["text"] == "special"
        assert post(api, body("x", stream=False)).json()["content"][0]["text"] == "OK"

    def test_queue_answers_first_then_rules(self, api: FakeAnthropicAPI) -> None:
        api.script(Rule(turns=[text("rule")]))
        api.enqueue(text("q1"), text("q2"))
        answers = [post(api, body("x", stream=False)).json()["content"][0]["text"] for _ in range(3)]
        assert answers == ["q1", "q2", "rule"]

    def test_session_id_header_is_exposed(self, api: FakeAnthropicAPI) -> None:
        httpx.post(
            f"{api.url}/v1/messages",
            json=body("x", stream=False),
            headers={**HEADERS, "x-claude-code-session-id": "sess-1"},
        )
        assert api.requests[-1].session_id == "sess-1"


class TestFaults:
    def test_fail_next_then_recover(self, api: FakeAnthropicAPI) -> None:
        api.fail_next(2, status=529)
        statuses = [post(api, body("x")).status_code for _ in range(3)]
        assert statuses == [529, 529, 200]
        assert post(api, body("x")).status_code == 200
        api.fail_next(1)
        resp = post(api, body("x"))
        assert resp.status_code == 500 and resp.json()["error"]["type"] == "api_error"

    def test_scripted_error_turn(self, api: FakeAnthropicAPI) -> None:
        api.script(Rule(turns=[error(529)]))
        resp = post(api, body("x"))
        assert resp.status_code == 529 and resp.json()["error"]["type"] == "overloaded_error"

    def test_delay(self, api: FakeAnthropicAPI) -> None:
        api.script(Rule(turns=[Turn(blocks=[{"type": "text", "text": "late"}], delay_s=0.4)]))
        started = time.monotonic()
        assert post(api, body("x", stream=False)).status_code == 200
        assert time.monotonic() - started >= 0.4

    def test_hang_sends_headers_then_nothing(self, api: FakeAnthropicAPI) -> None:
        api.script(Rule(turns=[hang()]))
        with (
            httpx.Client(timeout=httpx.Timeout(5.0, read=0.5)) as client,
            client.stream("POST", f"{api.url}/v1/messages", json=body("x"), headers=HEADERS) as resp,
        ):
            assert resp.status_code == 200
            with pytest.raises(httpx.ReadTimeout):
                for _ in resp.iter_lines():
                    pass


class TestRecordingAndEndpoints:
    def test_every_request_is_recorded_with_headers_and_body(self, api: FakeAnthropicAPI) -> None:
        post(api, body("remember me"))
        req = api.requests[-1]
        assert req.method == "POST" and req.path == "/v1/messages?beta=true"
        assert req.headers["x-api-key"] == "sk-test"
        assert req.body["messages"][0]["content"][1]["text"] == "remember me"
        assert req.cwd() == "/tmp/wt-1"

    def test_the_usage_each_answer_reported_is_recorded_and_summed(self, api: FakeAnthropicAPI) -> None:
        big = {"input_tokens": 7, "output_tokens": 11, "cache_creation_input_tokens": 13,
               "cache_read_input_tokens": 17}
        api.enqueue(text("a", usage=big), text("b"), error(500), hang())
        assert post(api, body("x")).status_code == 200  # streamed: message_start + message_delta
        assert post(api, body("x", stream=False)).status_code == 200
        assert post(api, body("x")).status_code == 500  # an error reports no usage
        with (
            httpx.Client(timeout=httpx.Timeout(5.0, read=0.5)) as client,
            client.stream("POST", f"{api.url}/v1/messages", json=body("x"), headers=HEADERS) as resp,
        ):
            with pytest.raises(httpx.ReadTimeout):
                for _ in resp.iter_lines():
                    pass
        hung = {"input_tokens": 100, "output_tokens": 1}  # only message_start was sent
        assert api.reported == [big, {"input_tokens": 100, "output_tokens": 20}, hung]
        assert api.reported_usage() == {"input_tokens": 207, "output_tokens": 32,
                                        "cache_creation_input_tokens": 13, "cache_read_input_tokens": 17}

    def test_count_tokens_and_unknown_paths(self, api: FakeAnthropicAPI) -> None:
        count = httpx.post(f"{api.url}/v1/messages/count_tokens", json=body("x"), headers=HEADERS)
        assert count.status_code == 200 and count.json()["input_tokens"] > 0
        other = httpx.get(f"{api.url}/api/hello")
        assert other.status_code == 404 and other.json()["type"] == "error"
        assert [r.path for r in api.requests] == ["/v1/messages/count_tokens", "/api/hello"]
        assert api.message_requests() == []


def test_binds_only_to_loopback() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        FakeAnthropicAPI(host="0.0.0.0")
    with FakeAnthropicAPI() as server:
        assert server.url.startswith("http://127.0.0.1:")
