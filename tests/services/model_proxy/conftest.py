"""Fixtures: the scripted Anthropic fake as upstream and a started model proxy in front of it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.services.model_proxy import ModelProxyServer
from tests.conftest import make_settings
from tests.fakes.anthropic_api import FakeAnthropicAPI

REAL_KEY = "sk-ant-real-key-for-upstream-0123456789"
MODEL = "claude-sonnet-4-5"


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory for Unix sockets (pytest's tmp_path can pass the 108-byte limit)."""
    path = Path(tempfile.mkdtemp(prefix="mp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def upstream() -> Iterator[FakeAnthropicAPI]:
    with FakeAnthropicAPI() as server:
        yield server


@pytest.fixture
def proxy(upstream: FakeAnthropicAPI, sock_dir: Path, tmp_path: Path) -> Iterator[ModelProxyServer]:
    settings = make_settings(tmp_path / "ws", ANTHROPIC_API_KEY=REAL_KEY, ANTHROPIC_BASE_URL=upstream.url)
    server = ModelProxyServer(settings, sock_dir / "model.sock", environ={})
    server.start()
    yield server
    server.close()


def client_for(proxy: ModelProxyServer, token: str | None = None) -> httpx.Client:
    headers = {"anthropic-version": "2023-06-01"}
    if token is not None:
        headers["x-api-key"] = token
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(proxy.socket_path)),
        base_url="http://proxy",
        headers=headers,
        timeout=30.0,
    )


def message_body(prompt: str = "hello", *, stream: bool = True, model: str = MODEL) -> dict[str, object]:
    return {
        "model": model,
        "max_tokens": 1024,
        "stream": stream,
        "messages": [{"role": "user", "content": prompt}],
    }
