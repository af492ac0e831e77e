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
