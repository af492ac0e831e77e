"""Big bodies are parsed in a worker process, with the same result and errors as inline; small ones
inline; a dead worker loses no delivery."""

from __future__ import annotations

import json
import os
import signal

import pytest

from app.errors import BadRequest
from app.intake.parse_pool import IntakeRules, ParsePool, parse_delivery
from tests.conftest import make_settings


@pytest.fixture
def rules(tmp_path) -> IntakeRules:
    return IntakeRules.from_settings(make_settings(tmp_path / "ws"))


def _big_body(n: int = 4000) -> bytes:
    paragraphs = [{"type": "paragraph", "content": [{"type": "text", "text": f"line {i}"}]} for i in range(n)]
    doc = {"type": "doc", "version": 1, "content": paragraphs}
    body = {"key": "PROJ-9", "summary": "Big", "description": doc}
    return json.dumps(body).encode()


def _worker_pids(pool: ParsePool) -> list[int]:
    return [] if pool._pool is None else list(pool._pool._processes)  # type: ignore[attr-defined]


async def test_small_bodies_are_parsed_inline(rules: IntakeRules) -> None:
    pool = ParsePool()
    _, ticket = await pool.parse(b'{"key": "PROJ-1", "summary": "Small"}', rules, None)
    assert ticket.key == "PROJ-1"  # type: ignore[union-attr]
    assert pool._pool is None  # no worker was started for it


async def test_big_bodies_go_to_a_worker_process_with_the_same_result(rules: IntakeRules) -> None:
    raw = _big_body()
    assert len(raw) > ParsePool().inline_max_bytes
    pool = ParsePool()
    try:
        envelope, ticket = await pool.parse(raw, rules, None)
        pids = _worker_pids(pool)
        assert pids and os.getpid() not in pids
        assert (envelope, ticket) == parse_delivery(raw, rules, None)
    finally:
        pool.close()


async def test_errors_come_back_as_the_same_error(rules: IntakeRules) -> None:
    raw = b'{"key": "PROJ-1", "summary": "x", "pad": "' + b"a" * 40_000 + b'"'  # truncated JSON
    pool = ParsePool()
    try:
        with pytest.raises(BadRequest) as remote:
            await pool.parse(raw, rules, None)
        with pytest.raises(BadRequest) as local:
            parse_delivery(raw, rules, None)
        assert remote.value.detail == local.value.detail and remote.value.status_code == 400
    finally:
        pool.close()


async def test_a_dead_worker_loses_no_delivery(rules: IntakeRules) -> None:
    pool = ParsePool()
    try:
        await pool.parse(_big_body(), rules, None)
        for pid in _worker_pids(pool):
            os.kill(pid, signal.SIGKILL)
        _, ticket = await pool.parse(_big_body(), rules, None)  # the broken pool is noticed here
        assert ticket.key == "PROJ-9"  # type: ignore[union-attr]
        _, again = await pool.parse(_big_body(), rules, None)  # and a new worker serves the next
        assert again.key == "PROJ-9" and _worker_pids(pool)  # type: ignore[union-attr]
    finally:
        pool.close()
