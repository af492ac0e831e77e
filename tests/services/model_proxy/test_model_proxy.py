"""The model proxy over its real Unix socket, in front of the scripted Anthropic fake (real TCP)."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import re
import socket
import stat
import threading
from pathlib import Path

import httpx
import pytest

from app.services.model_proxy import ModelProxyServer, Usage, cost_usd, price_for
from app.services.model_proxy.server import DEFAULT_UPSTREAM
from tests.conftest import make_settings
from tests.fakes.anthropic_api import FakeAnthropicAPI, RecordedRequest, Rule, Turn, hang, text, wait_for
from tests.services.model_proxy.conftest import MODEL, REAL_KEY, client_for, message_body

USAGE = {
    "input_tokens": 120,
    "output_tokens": 33,
    "cache_creation_input_tokens": 50,
    "cache_read_input_tokens": 400,
}
_IDS = re.compile(rb"(msg|toolu)_fake\d+")


def expected_cost(usage: dict[str, int], times: int = 1, model: str = MODEL) -> float:
    p = price_for(model)
    one = (
        usage["input_tokens"] * p.input
        + usage["output_tokens"] * p.output
        + usage.get("cache_creation_input_tokens", 0) * p.input * 1.25
        + usage.get("cache_read_input_tokens", 0) * p.input * 0.1
    ) / 1e6
    return one * times


def usage_of(
    usage: dict[str, int], *, times: int = 1, requests: int | None = None, exhausted: bool = False
) -> Usage:
    return Usage(
        requests=times if requests is None else requests,
        input_tokens=usage["input_tokens"] * times,
        output_tokens=usage["output_tokens"] * times,
        cache_creation_input_tokens=usage.get("cache_creation_input_tokens", 0) * times,
        cache_read_input_tokens=usage.get("cache_read_input_tokens", 0) * times,
        cost_usd=pytest.approx(expected_cost(usage, times)),
        exhausted=exhausted,
    )  # type: ignore[arg-type]


def assert_key_swapped(requests: list[RecordedRequest], token: str) -> None:
    """Upstream got the real key and never the capability token."""
    assert requests, "nothing reached upstream"
    for req in requests:
        assert req.headers.get("x-api-key") == REAL_KEY
        assert "authorization" not in req.headers
        assert all(token not in v for v in req.headers.values())
        assert token not in req.path


# ----- forwarding -----
def test_stream_is_passed_through_byte_identical_and_metered(
    proxy: ModelProxyServer, upstream: FakeAnthropicAPI
) -> None:
    token = proxy.grant("run-1", budget_usd=5.0)
    upstream.enqueue(text("Hello from upstream", usage=USAGE), text("Hello from upstream", usage=USAGE))
    with (
        client_for(proxy, token) as client,
        client.stream(
            "POST",
            "/v1/messages?beta=true",
            json=message_body(),
            headers={"anthropic-beta": "claude-code-20250219", "x-claude-code-session-id": "sess-1"},
        ) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["transfer-encoding"] == "chunked"
        via_proxy = b"".join(r.iter_raw())
    with httpx.Client(base_url=upstream.url) as direct:
        straight = direct.post(
            "/v1/messages?beta=true", json=message_body(), headers={"x-api-key": "x"}
        ).content
    # Same bytes (the fake numbers its message ids per answer: the only difference allowed).
    assert _IDS.sub(b"ID", via_proxy) == _IDS.sub(b"ID", straight)
    assert b"event: message_delta" in via_proxy and b"Hello from upstream" in via_proxy

    first = upstream.requests[0]
    assert first.path == "/v1/messages?beta=true"
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert first.headers["anthropic-beta"] == "claude-code-20250219"
    assert first.headers["x-claude-code-session-id"] == "sess-1"
    assert first.body == message_body()
    assert_key_swapped(upstream.requests[:1], token)
    assert proxy.usage(token) == usage_of(USAGE)


def test_stream_reaches_the_client_while_upstream_is_still_sending(
    proxy: ModelProxyServer, upstream: FakeAnthropicAPI
) -> None:
    """A stream that stops after message_start: the client still gets message_start (no buffering),
    and the input side is already metered."""
    token = proxy.grant("run-1", budget_usd=5.0)
    upstream.enqueue(hang())
    with client_for(proxy, token) as client, client.stream("POST", "/v1/messages", json=message_body()) as r:
        seen = b""
        for chunk in r.iter_raw():  # a buffering proxy would block here until the read timeout
            seen += chunk
            if b"event: message_start" in seen and seen.endswith(b"\n\n"):
                break
        assert b'"type": "message_start"' in seen
        assert proxy.usage(token).input_tokens == 100
    # The client went away mid-stream: the proxy drops the upstream request and logs it.
    assert wait_for(lambda: not proxy._connections)


def test_json_answer_is_passed_through_and_metered(
    proxy: ModelProxyServer, upstream: FakeAnthropicAPI
) -> None:
    token = proxy.grant("run-1", budget_usd=5.0)
    upstream.enqueue(text("plain", usage=USAGE))
    with client_for(proxy, token) as client:
        r = client.post("/v1/messages", json=message_body(stream=False))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    body = r.json()
    assert body["content"] == [{"type": "text", "text": "plain"}] and body["usage"] == USAGE
    assert proxy.usage(token) == usage_of(USAGE)
    assert_key_swapped(upstream.requests, token)


def test_count_tokens_is_forwarded_with_its_query_and_not_charged(
    proxy: ModelProxyServer, upstream: FakeAnthropicAPI
) -> None:
    token = proxy.grant("run-1", budget_usd=5.0)
    with client_for(proxy, token) as client:
        r = client.post("/v1/messages/count_tokens?beta=true", json={"model": MODEL, "messages": []})
    assert r.status_code == 200 and r.json() == {"input_tokens": 100}
    assert upstream.requests[0].path == "/v1/messages/count_tokens?beta=true"
    assert proxy.usage(token) == Usage(1, 0, 0, 0, 0, 0.0, False)


def test_keep_alive_two_requests_one_connection(proxy: ModelProxyServer, upstream: FakeAnthropicAPI) -> None:
    token = proxy.grant("run-1", budget_usd=5.0)
    before = proxy.connections_accepted
    with client_for(proxy, token) as client:
        assert client.post("/v1/messages", json=message_body()).status_code == 200
        assert client.post("/v1/messages", json=message_body(stream=False)).status_code == 200
        assert client.post("/v1/messages/count_tokens", json={"model": MODEL}).status_code == 200
    assert proxy.connections_accepted - before == 1
    assert proxy.usage(token).requests == 3


def test_keep_alive_after_refusals(proxy: ModelProxyServer) -> None:
    """404 and 401 answers read the request body, so the connection stays usable."""
    token = proxy.grant("run-1", budget_usd=5.0)
    before = proxy.connections_accepted
    with client_for(proxy, token) as client:
        assert client.post("/v1/complete", json={"x": 1}).status_code == 404
        assert (
            client.post("/v1/messages", json=message_body(), headers={"x-api-key": "nope"}).status_code == 401
        )
        assert client.post("/v1/messages", json=message_body()).status_code == 200
    assert proxy.connections_accepted - before == 1


# ----- refusals -----
def assert_api_error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == kind
    return str(body["error"]["message"])


def test_bad_missing_and_revoked_tokens_get_401(proxy: ModelProxyServer, upstream: FakeAnthropicAPI) -> None:
    token = proxy.grant("run-1", budget_usd=5.0)
    with client_for(proxy) as client:
        for headers in (
            {},
            {"x-api-key": "wrong"},
            {"x-api-key": token[:-1]},
            {"x-api-key": token + "x"},
            {"x-api-key": REAL_KEY},
            {"authorization": f"Basic {token}"},
        ):
            assert_api_error(
                client.post("/v1/messages", json=message_body(), headers=headers), 401, "authentication_error"
            )
        assert (
            client.post(
                "/v1/messages", json=message_body(), headers={"authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )
        proxy.revoke(token)
        for headers in ({"x-api-key": token}, {"authorization": f"Bearer {token}"}):
            assert_api_error(
                client.post("/v1/messages", json=message_body(), headers=headers), 401, "authentication_error"
            )
    assert len(upstream.requests) == 1
    assert proxy.usage(token).requests == 1  # still readable after revoke
    with pytest.raises(KeyError):
        proxy.usage("unknown")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/messages"),
        ("POST", "/v1/complete"),
        ("POST", "/v1/messages/batches"),
        ("GET", "/v1/models"),
        ("POST", "/v1/messages/"),
        ("POST", "/v1/messages/%2e%2e/messages"),
        ("POST", "/V1/messages"),
        ("POST", "//v1/messages"),
        ("POST", "/"),
        ("PUT", "/v1/messages"),
    ],
)
def test_other_paths_get_404(
    proxy: ModelProxyServer, upstream: FakeAnthropicAPI, method: str, path: str
) -> None:
    token = proxy.grant("run-1", budget_usd=5.0)
    with client_for(proxy, token) as client:
        r = client.request(method, path, content=b"{}" if method != "GET" else None)
    assert_api_error(r, 404, "not_found_error")
    assert upstream.requests == []


def test_budget_cutoff(proxy: ModelProxyServer, upstream: FakeAnthropicAPI) -> None:
    budget = expected_cost(USAGE) * 1.5  # the second request passes it
    token = proxy.grant("run-1", budget_usd=budget)
    upstream.script(Rule(turns=[text("ok", usage=USAGE)]))
    with client_for(proxy, token) as client:
        assert client.post("/v1/messages", json=message_body()).status_code == 200
        assert not proxy.usage(token).exhausted
        assert client.post("/v1/messages", json=message_body(stream=False)).status_code == 200
        for _ in range(2):
            message = assert_api_error(
                client.post("/v1/messages", json=message_body()), 400, "invalid_request_error"
            )
            assert message == f"auto-code: run budget of ${budget:.2f} exhausted"
    assert len(upstream.requests) == 2
    assert proxy.usage(token) == usage_of(USAGE, times=2, exhausted=True)


def test_zero_budget_refuses_the_first_request(proxy: ModelProxyServer, upstream: FakeAnthropicAPI) -> None:
    token = proxy.grant("run-1", budget_usd=0)
    with client_for(proxy, token) as client:
        assert_api_error(client.post("/v1/messages", json=message_body()), 400, "invalid_request_error")
    assert upstream.requests == [] and proxy.usage(token).exhausted


def test_concurrent_grants_are_metered_separately(
    proxy: ModelProxyServer, upstream: FakeAnthropicAPI
) -> None:
    usage_a = {
        "input_tokens": 1000,
        "output_tokens": 7,
        "cache_creation_input_tokens": 3,
        "cache_read_input_tokens": 11,
    }
    usage_b = {
        "input_tokens": 5,
        "output_tokens": 300,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 9000,
    }
    upstream.script(
        Rule(prompt_contains="alpha", turns=[text("a", usage=usage_a)]),
        Rule(prompt_contains="beta", turns=[text("b", usage=usage_b)]),
    )
    tokens = {"alpha": proxy.grant("run-a", budget_usd=50.0), "beta": proxy.grant("run-b", budget_usd=50.0)}

    def work(prompt: str, stream: bool) -> int:
        with client_for(proxy, tokens[prompt]) as client:
            return client.post("/v1/messages", json=message_body(prompt, stream=stream)).status_code

    jobs = [(p, i % 2 == 0) for i in range(6) for p in ("alpha", "beta")]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda j: work(*j), jobs)) == [200] * len(jobs)
    assert proxy.usage(tokens["alpha"]) == usage_of(usage_a, times=6)
    assert proxy.usage(tokens["beta"]) == usage_of(usage_b, times=6)
    for req in upstream.requests:
        assert req.headers["x-api-key"] == REAL_KEY


@pytest.mark.parametrize("status", [500, 529, 429])
def test_upstream_errors_are_passed_back_verbatim(
    proxy: ModelProxyServer, upstream: FakeAnthropicAPI, status: int
) -> None:
    token = proxy.grant("run-1", budget_usd=5.0)
    upstream.fail_next(1, status)
    with client_for(proxy, token) as client:
        r = client.post("/v1/messages", json=message_body())
        with httpx.Client(base_url=upstream.url) as direct:
            upstream.fail_next(1, status)
            straight = direct.post("/v1/messages", json=message_body())
        assert r.status_code == status
        assert r.content == straight.content
        assert r.headers["content-type"] == "application/json"
        assert client.post("/v1/messages", json=message_body()).status_code == 200  # same connection
    assert proxy.usage(token).requests == 2 and proxy.usage(token).cost_usd == pytest.approx(
        expected_cost({"input_tokens": 100, "output_tokens": 20})
    )


def test_unreachable_upstream_is_a_502(sock_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        settings = make_settings(tmp_path / "ws", ANTHROPIC_API_KEY=REAL_KEY, ANTHROPIC_BASE_URL=dead)
        with ModelProxyServer(settings, sock_dir / "m.sock", environ={}) as proxy:
            token = proxy.grant("run-1", budget_usd=1.0)
            with client_for(proxy, token) as client:
                assert_api_error(client.post("/v1/messages", json=message_body()), 502, "api_error")


def test_hop_by_hop_and_credentials_are_not_forwarded(
    proxy: ModelProxyServer, upstream: FakeAnthropicAPI
) -> None:
    token = proxy.grant("run-1", budget_usd=5.0)
    with client_for(proxy, token) as client:
        r = client.post(
            "/v1/messages",
            json=message_body(),
            headers={
                "connection": "keep-alive, x-private-hop",
                "x-private-hop": "1",
                "te": "trailers",
                "proxy-authorization": "Basic abc",
                "authorization": f"Bearer {token}",
                "accept-encoding": "gzip, br",
                "x-custom": "kept",
            },
        )
    assert r.status_code == 200
    got = upstream.requests[0].headers
    assert got["x-custom"] == "kept" and got["accept-encoding"] == "identity"
    for name in ("te", "proxy-authorization", "authorization"):
        assert name not in got
    assert_key_swapped(upstream.requests, token)


# ----- logs -----
def test_logs_one_line_per_request_and_never_a_secret(
    proxy: ModelProxyServer, upstream: FakeAnthropicAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = proxy.grant("run-logs", budget_usd=5.0)
    upstream.enqueue(text("secret body text", usage=USAGE))
    with client_for(proxy, token) as client:
        client.post("/v1/messages", json=message_body("prompt body text"))
        client.post("/v1/messages", json=message_body(), headers={"x-api-key": "wrong-token-value"})
        client.post("/v1/nothing", json={})
        proxy.revoke(token)
        client.post("/v1/messages", json=message_body())
    assert wait_for(lambda: len([r for r in caplog.records if r.getMessage() == "model_proxy_request"]) == 4)
    lines = [r for r in caplog.records if r.getMessage() == "model_proxy_request"]
    ok = lines[0]
    assert (ok.run_id, ok.status, ok.input_tokens, ok.output_tokens) == ("run-logs", 200, 120, 33)  # type: ignore[attr-defined]
    assert ok.cache_creation_input_tokens == 50 and ok.cache_read_input_tokens == 400  # type: ignore[attr-defined]
    assert ok.cost_usd == pytest.approx(expected_cost(USAGE), abs=1e-6) and ok.duration_ms >= 0  # type: ignore[attr-defined]
    assert [r.status for r in lines[1:]] == [401, 404, 401]  # type: ignore[attr-defined]
    everything = caplog.text + "".join(repr(vars(r)) for r in caplog.records)
    for secret in (REAL_KEY, token, "wrong-token-value", "secret body text", "prompt body text"):
        assert secret not in everything


# ----- lifecycle -----
def test_lifecycle(upstream: FakeAnthropicAPI, sock_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "ws", ANTHROPIC_API_KEY=REAL_KEY)
    path = sock_dir / "life.sock"
    proxy = ModelProxyServer(settings, path, environ={"ANTHROPIC_BASE_URL": upstream.url})
    assert proxy.upstream_url == upstream.url
    proxy.start()
    proxy.start()  # idempotent
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(OSError, match="in use"):
        ModelProxyServer(settings, path, environ={}).start()
    token = proxy.grant("run-1", budget_usd=1.0)
    with client_for(proxy, token) as client:
        assert client.post("/v1/messages", json=message_body()).status_code == 200
    proxy.close()
    proxy.close()  # idempotent
    assert not path.exists()
    proxy.start()  # again, grants kept
    with client_for(proxy, token) as client:
        assert client.post("/v1/messages", json=message_body()).status_code == 200
    assert proxy.usage(token).requests == 2
    proxy.close()


def test_stale_socket_file_is_replaced(sock_dir: Path, tmp_path: Path) -> None:
    path = sock_dir / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens
    settings = make_settings(tmp_path / "ws", ANTHROPIC_API_KEY=REAL_KEY)
    with ModelProxyServer(settings, path, environ={}) as proxy:
        assert proxy.running
    (sock_dir / "plain").write_text("x")
    with pytest.raises(FileExistsError):
        ModelProxyServer(settings, sock_dir / "plain", environ={}).start()


def test_upstream_defaults_and_key_required(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "ws", ANTHROPIC_API_KEY=REAL_KEY)
    assert ModelProxyServer(settings, tmp_path / "x.sock", environ={}).upstream_url == DEFAULT_UPSTREAM
    with_setting = make_settings(
        tmp_path / "ws", ANTHROPIC_API_KEY=REAL_KEY, ANTHROPIC_BASE_URL="http://127.0.0.1:9/gw/"
    )
    assert (
        ModelProxyServer(
            with_setting, tmp_path / "x.sock", environ={"ANTHROPIC_BASE_URL": "http://other"}
        ).upstream_url
        == "http://127.0.0.1:9/gw"
    )
    with pytest.raises(ValueError, match="ANTHROPIC_API_KEY"):
        ModelProxyServer(make_settings(tmp_path / "ws"), tmp_path / "x.sock", environ={})


async def test_used_from_an_event_loop(proxy: ModelProxyServer, upstream: FakeAnthropicAPI) -> None:
    """Callers on another loop (FastAPI's) talk to it without sharing its loop."""
    token = proxy.grant("run-async", budget_usd=5.0)
    upstream.enqueue(Turn(blocks=[{"type": "text", "text": "hi"}], usage=USAGE))
    async with httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=str(proxy.socket_path)),
        base_url="http://proxy",
        headers={"x-api-key": token},
    ) as client:
        r = await client.post("/v1/messages", json=message_body())
        assert r.status_code == 200
        events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
        assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert proxy.usage(token) == usage_of(USAGE)


def test_pricing_by_family_and_unknown_is_dearest(caplog: pytest.LogCaptureFixture) -> None:
    assert price_for("claude-opus-4-5-20251101").input == 5.0
    assert price_for("claude-opus-4-1-20250805").output == 75.0
    assert price_for("claude-sonnet-4-5").output == 15.0
    assert price_for("claude-haiku-4-5").input == 1.0
    assert price_for("claude-3-5-haiku-latest").input == 0.8
    caplog.set_level(logging.WARNING)
    dear = price_for("mystery-model-x")
    price_for("mystery-model-x")
    assert dear.output == 75.0
    assert len([r for r in caplog.records if "unknown_model" in r.getMessage()]) == 1
    p = price_for("claude-sonnet-4-5")
    assert cost_usd(
        p,
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_creation_input_tokens=1_000_000,
        cache_read_input_tokens=1_000_000,
    ) == pytest.approx(3 + 15 + 3.75 + 0.3)
    assert cost_usd(
        p, cache_creation_input_tokens=1_000_000, cache_creation_1h_input_tokens=1_000_000
    ) == pytest.approx(6.0)


def test_the_dearer_of_asked_and_served_model_is_charged(
    proxy: ModelProxyServer, upstream: FakeAnthropicAPI
) -> None:
    """The answer names the model that served it; the dearer of asked and served is charged."""
    token = proxy.grant("run-1", budget_usd=5.0)
    upstream.enqueue(text("x", usage=USAGE))
    with client_for(proxy, token) as client:
        body = json.dumps(message_body(model="claude-haiku-4-5"))[:-1] + ', "model": "claude-opus-4-1"}'
        assert (
            client.post(
                "/v1/messages", content=body, headers={"content-type": "application/json"}
            ).status_code
            == 200
        )
    assert proxy.usage(token).cost_usd == pytest.approx(expected_cost(USAGE, model="claude-opus-4-1"))


def test_upstream_sees_exactly_one_key_header_and_no_token_raw(sock_dir: Path, tmp_path: Path) -> None:
    """The fake keeps headers in a dict (a duplicate would hide); this upstream keeps the raw bytes."""
    raw: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            while len(rest) < length:
                rest += conn.recv(65536)
            raw.append(head + b"\r\n\r\n" + rest)
            body = b'{"type":"message","usage":{"input_tokens":1,"output_tokens":1}}'
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings = make_settings(tmp_path / "ws", ANTHROPIC_API_KEY=REAL_KEY, ANTHROPIC_BASE_URL=url)
    try:
        with ModelProxyServer(settings, sock_dir / "raw.sock", environ={}) as proxy:
            token = proxy.grant("run-raw", budget_usd=1.0)
            with client_for(proxy, token) as client:
                r = client.post(
                    "/v1/messages",
                    json=message_body(stream=False),
                    headers={"authorization": f"Bearer {token}"},
                )
            assert r.status_code == 200
    finally:
        thread.join(30)
        listener.close()
    (request,) = raw
    head = request.split(b"\r\n\r\n", 1)[0].lower()
    assert token.encode() not in request and token.lower().encode() not in head
    assert head.count(b"\r\nx-api-key:") == 1 and f"x-api-key: {REAL_KEY}".lower().encode() in head
    assert b"\r\nauthorization:" not in head
