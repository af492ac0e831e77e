"""JSON logging: one object per line, INFO on stdout, WARNING+ on stderr, run context attached."""

from __future__ import annotations

import json
import logging

import pytest

from app.logger import bind_run, configure_logging


@pytest.fixture
def configured():
    """Restores the root logger afterwards. Tests call configure_logging themselves: pytest resets
    the root level after each setup phase, and the handlers must bind capsys's streams."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers, root.level = saved


def test_lines_are_json_with_run_context_and_split_by_level(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    log = logging.getLogger("app.test")
    with bind_run("PROJ-1", "PROJ-1:abc"):
        log.info("step_started", extra={"step": "lint"})
    log.warning("something_odd")
    logging.getLogger("uvicorn.error").info("Started", extra={"color_message": "\x1b[36mStarted"})
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    first = lines[0]
    assert first["event"] == "step_started" and first["level"] == "info"
    assert first["ticket"] == "PROJ-1" and first["run_id"] == "PROJ-1:abc" and first["step"] == "lint"
    assert first["ts"].endswith("+00:00")
    assert "ticket" not in lines[1] and "color_message" not in lines[1]  # context ended with the block
    assert [json.loads(line)["event"] for line in err.splitlines()] == ["something_odd"]


def test_dbos_lines_are_json_and_its_info_chatter_is_held_back(
    configured: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from dbos._logger import init_logger

    configure_logging("INFO")
    init_logger()  # what DBOS() does: it must not install its own plain-text console handler
    logging.getLogger("dbos").info("Initializing DBOS")
    logging.getLogger("dbos").warning("real problem")
    out, err = capsys.readouterr()
    assert out == ""
    assert [json.loads(line)["event"] for line in err.splitlines()] == ["real problem"]


def test_reconfiguring_keeps_foreign_handlers_and_does_not_double_ours(
    configured: None, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    configure_logging("INFO")  # create_app runs it once per app
    logging.getLogger("app.test").warning("seen_by_both")
    _, err = capsys.readouterr()
    assert err.count("seen_by_both") == 1  # our handler, once
    assert "seen_by_both" in caplog.text  # pytest's handler survived
