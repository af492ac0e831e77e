"""The run store never writes a secret: every text (ticket copy, step detail, log line, run fields)
goes through the scanner's `redact` first. Checked on the SQLite file's bytes."""

from __future__ import annotations

import base64
from pathlib import Path

from app.services.outbound_scan import SecretScanner
from app.services.runner.store import SqlRunStore, make_engine
from app.services.runner.store_base import NewRun

SECRET = "sk-ant-St0reRedacti0n-value-0123456789"


def test_no_write_path_stores_the_value(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    scanner = SecretScanner({"ANTHROPIC_API_KEY": SECRET})
    store = SqlRunStore(make_engine(f"sqlite:///{db}"), redact=scanner.redact)
    store.create_schema()
    b64 = base64.b64encode(f"user:{SECRET}".encode()).decode()
    store.create_run("PROJ-1:1", "PROJ-1", f'{{"summary": "{SECRET}"}}')
    # The production insert (intake's durable accept) redacts the ticket copy too.
    store.accept_runs([NewRun(run_id="PROJ-2:1", ticket="PROJ-2", ticket_json=f'{{"summary": "{SECRET}"}}',
                              dedup_key="PROJ-2")])
    store.start_step("PROJ-1:1", "implement", {"prompt": SECRET})
    store.update_step_detail("PROJ-1:1", "implement", {"nested": [{"said": f"x{SECRET}y"}], "b64": b64})
    store.finish_step("PROJ-1:1", "implement", "succeeded", {"summary": SECRET, "obj": Path(SECRET)})
    store.start_step("PROJ-1:1", "lint")
    store.fail_running_steps("PROJ-1:1", f"crashed: {SECRET}")
    store.add_log("PROJ-1:1", f"the CLI printed {SECRET}")
    store.update_run("PROJ-1:1", status="failed", error=f"agent said {b64}", pr_url=SECRET)
    store.add_usage("PROJ-1:1", turns=1, cost_usd=0.0, session_id=SECRET)
    view = store.get_run("PROJ-1:1")
    store.dispose()
    assert view is not None and "[redacted:ANTHROPIC_API_KEY]" in (view.error or "")
    assert view.steps[0].detail == {"summary": "[redacted:ANTHROPIC_API_KEY]",
                                    "obj": "[redacted:ANTHROPIC_API_KEY]"}
    for path in tmp_path.iterdir():  # the database and its -wal/-shm files
        data = path.read_bytes()
        assert SECRET.encode() not in data and b64.encode() not in data, path.name


def test_the_engines_ticket_copy_is_scanned_once_and_plain_text_always(tmp_path: Path) -> None:
    """`RunEngine.submit` redacts the ticket copy through the store (the same text goes to DBOS) and
    `accept_runs` stores it: one scan, not two. A plain text handed to the accept is still scanned,
    and so is anything made from a redacted text."""
    scanner = SecretScanner({"ANTHROPIC_API_KEY": SECRET})
    scans: list[str] = []

    def scan(text: str) -> str:
        scans.append(text)
        return scanner.redact(text)

    store = SqlRunStore(make_engine(f"sqlite:///{tmp_path / 'runs.sqlite'}"), redact=scan)
    store.create_schema()
    ticket = f'{{"key": "PROJ-3", "summary": "{SECRET}"}}'
    copy = store.redact(ticket)  # what the engine does
    store.accept_runs([NewRun(run_id="PROJ-3:1", ticket="PROJ-3", ticket_json=copy, dedup_key="PROJ-3"),
                       NewRun(run_id="PROJ-3:2", ticket="PROJ-3", ticket_json=ticket, dedup_key="PROJ-3b")])
    assert scans == [ticket, ticket]  # the engine's copy once; the plain text by the accept
    rows = [store.get_run_row(run_id) for run_id in ("PROJ-3:1", "PROJ-3:2")]
    assert [r.ticket_json if r else None for r in rows] == [copy, copy]
    assert copy == '{"key": "PROJ-3", "summary": "[redacted:ANTHROPIC_API_KEY]"}'
    assert SECRET not in store.redact(copy + SECRET) and SECRET not in store.redact(f"{copy[:5]}{SECRET}")
    store.dispose()
