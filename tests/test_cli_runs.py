"""`auto-code runs | show | logs | cancel | retry` as people and scripts use them: the real CLI
(`python -m app.cli`, a fresh process in an empty directory with only the environment given)
against the real service over HTTP (tests/dashboard/live_service.py).

Readable tables without colour when stdout is a pipe and with colour on a terminal (a pty), the
API's JSON with --json, `logs --follow` printing lines written while it runs until the run ends,
and the documented exit codes: 0 ok, 1 no such run / failed run / refused action, 2 usage or
configuration, 3 service unreachable.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from tests.dashboard.live_service import LiveService, free_port, live_service
from tests.procs import run_captured

ROOT = Path(__file__).resolve().parent.parent
OP = "operator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {OP}"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT), "OPERATOR_TOKEN": OP, "TERM": "xterm", **extra}


def cli(tmp_path: Path, svc: LiveService | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    url = ["--url", svc.url] if svc else []
    home = tmp_path / "cli-home"
    home.mkdir(exist_ok=True)
    return run_captured([sys.executable, "-m", "app.cli", *args, *url], cwd=home, env=cli_env(home, **env),
                        timeout=120)


def cli_on_a_terminal(tmp_path: Path, svc: LiveService, *args: str) -> str:
    """The CLI with its stdout on a pseudo-terminal: what a person at a terminal sees."""
    home = tmp_path / "cli-home"
    home.mkdir(exist_ok=True)
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", *args, "--url", svc.url], cwd=home,
                            env=cli_env(home), stdout=follower, stderr=subprocess.PIPE,
                            start_new_session=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    return b"".join(chunks).decode()


def test_runs_and_show_as_tables_json_and_exit_codes(tmp_path: Path) -> None:
    script = {"tickets": {"BAD-2": {"errors": {"implement": "max_turns"}}}}
    with live_service(tmp_path, script, OPERATOR_TOKEN=OP) as svc:
        good = svc.wait(svc.deliver("PROJ-1", "Add a CONTRIBUTING file"), headers=AUTH)
        bad = svc.wait(svc.deliver("BAD-2"), headers=AUTH)
        svc.store.add_log(good["run_id"], "evil \x1b]0;owned\x07\x1b[31mred\x1b[0m line")
        listed = cli(tmp_path, svc, "runs")
        listed_json = cli(tmp_path, svc, "runs", "--json")
        only_failed = cli(tmp_path, svc, "runs", "--status", "failed")
        coloured = cli_on_a_terminal(tmp_path, svc, "runs")
        shown = cli(tmp_path, svc, "show", good["run_id"])
        shown_json = cli(tmp_path, svc, "show", good["run_id"], "--json")
        shown_bad = cli(tmp_path, svc, "show", bad["run_id"])
        missing = cli(tmp_path, svc, "show", "NOPE-1:x")
        logs = cli(tmp_path, svc, "logs", good["run_id"])
        logs_json = cli(tmp_path, svc, "logs", good["run_id"], "--json")
        wrong_token = cli(tmp_path, svc, "runs", OPERATOR_TOKEN="not-the-token-0123456789")
        bad_usage = cli(tmp_path, svc, "runs", "--status", "exploded")
        cancel_ended = cli(tmp_path, svc, "cancel", good["run_id"])
        retried = cli(tmp_path, svc, "retry", bad["run_id"], "--json")
        api_runs = [r["run_id"] for r in svc.get_run_list()]
    down = cli(tmp_path, None, "runs", "--url", f"http://127.0.0.1:{free_port()}")

    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["RUN", "TICKET", "REPOSITORY", "KIND", "STATUS", "CREATED", "(UTC)", "DURATION",
                              "COST", "PR"]
    assert [r.split()[0] for r in rows] == [bad["run_id"], good["run_id"]]  # newest first, full ids
    assert rows[0].split()[4] == "failed" and rows[1].split()[4] == "succeeded"
    assert rows[0].split()[2] == rows[1].split()[2] == "default"  # the settings' one repository
    assert "\x1b" not in listed.stdout  # a pipe gets no colour
    assert "\x1b[32msucceeded" in coloured and "\x1b[31mfailed" in coloured  # a terminal does
    assert ANSI.sub("", coloured).split() == listed.stdout.split()
    assert [r["run_id"] for r in json.loads(listed_json.stdout)] == [bad["run_id"], good["run_id"]]
    assert [r.split()[0] for r in only_failed.stdout.splitlines()[1:]] == [bad["run_id"]]

    assert shown.returncode == 0 and shown_bad.returncode == 1 and missing.returncode == 1
    assert re.search(r"^status\s+succeeded$", shown.stdout, re.M)
    steps = [line.split()[:2] for line in shown.stdout.split("STEP", 1)[1].splitlines()[1:]]
    assert ["implement", "succeeded"] in steps and ["pull_request", "succeeded"] in steps
    assert json.loads(shown_json.stdout)["run_id"] == good["run_id"] and shown_json.returncode == 0
    assert re.search(r"^error\s+.*max_turns", shown_bad.stdout, re.M)
    assert "no run NOPE-1:x" in missing.stderr and missing.stdout == ""

    assert logs.returncode == 0 and "evil \\x1b]0;owned\\x07\\x1b[31mred\\x1b[0m line" in logs.stdout
    assert "\x1b" not in logs.stdout and "\x07" not in logs.stdout  # hostile escapes made visible
    messages = [json.loads(line)["message"] for line in logs_json.stdout.splitlines()]
    assert "evil \x1b]0;owned\x07\x1b[31mred\x1b[0m line" in messages  # --json keeps the exact text

    assert wrong_token.returncode == 2 and "operator token" in wrong_token.stderr
    assert bad_usage.returncode == 2 and "invalid choice" in bad_usage.stderr
    assert cancel_ended.returncode == 1 and "already ended" in cancel_ended.stderr
    assert retried.returncode == 0 and json.loads(retried.stdout)["run_id"] in api_runs
    assert down.returncode == 3 and "cannot reach the service" in down.stderr
    for done in (listed, shown, missing, wrong_token, down):
        assert "Traceback" not in done.stderr


def test_logs_follow_prints_lines_as_they_come_and_ends_with_the_run(tmp_path: Path) -> None:
    with live_service(tmp_path, gated=True, OPERATOR_TOKEN=OP) as svc:
        run_id = svc.deliver("PROJ-3")
        assert svc.claude.entered.wait(30)  # the run is at work (implement waits for the release)
        svc.store.add_log(run_id, "written before following")
        home = tmp_path / "cli-home"
        home.mkdir()
        argv = [sys.executable, "-m", "app.cli", "logs", run_id, "--follow", "--url", svc.url]
        follow = subprocess.Popen(argv,
                                  cwd=home, env=cli_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        assert follow.stdout is not None
        first = follow.stdout.readline()  # the stream has started: it is following
        svc.store.add_log(run_id, "written while following")
        svc.claude.release.set()
        # Read on through the same buffered file (communicate() would skip what readline buffered);
        # EOF comes when the CLI exits at the run's end (pytest's timeout bounds a hang).
        rest = follow.stdout.read()
        err = follow.stderr.read() if follow.stderr else ""
        follow.wait(timeout=60)
        final = svc.get_run(run_id, AUTH)
        logged = [line.message for line in svc.store.logs_after(run_id)]
    assert first.strip()
    assert follow.returncode == 0, err
    assert final["status"] == "succeeded"
    printed = (first + rest).splitlines()
    assert any(line.endswith("written while following") for line in printed)
    assert len(printed) == len(logged)  # every line, once
    assert f"run {run_id} ended: succeeded" in err


def test_logs_follow_of_a_failing_run_exits_1(tmp_path: Path) -> None:
    script = {"tickets": {"BAD-4": {"errors": {"implement": "api_error"}}}}
    with live_service(tmp_path, script, OPERATOR_TOKEN=OP) as svc:
        run_id = svc.deliver("BAD-4")
        followed = cli(tmp_path, svc, "logs", run_id, "--follow")
    assert followed.returncode == 1
    assert f"run {run_id} ended: failed" in followed.stderr
