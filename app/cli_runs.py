"""`auto-code runs | show | logs | cancel | retry`: a running service's runs API, for people
(tables; status colours only when stdout is a terminal and NO_COLOR is unset) and for scripts
(`--json`: the API's own JSON; `logs --json`: one JSON object per line).

Exit codes, for scripts:
  0  done; `show` / `logs --follow`: the run exists and has not failed (succeeded, no changes, or
     still active when shown)
  1  no such run; the run failed, was cancelled or needs routing (`show`, and `logs --follow` when
     it ends); `cancel` of a run that already ended, `retry` of a run still active
  2  usage or configuration: bad arguments, settings that do not validate, the service refusing
     the operator token (OPERATOR_TOKEN), a filter the service rejects
  3  the service could not be reached, timed out, or answered with a server error

Run text (ticket summaries, step details, log lines) is hostile: the tables strip control
characters from it, so a log line cannot move the cursor, retitle the terminal or fake colours.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any, get_args

import httpx

from app.models import FINAL_STATUSES, RunStatus, RunView

EXIT_OK, EXIT_RUN, EXIT_USAGE, EXIT_SERVICE = 0, 1, 2, 3
BAD_ENDS = frozenset({"failed", "cancelled", "needs_routing"})
_COLOURS = {"succeeded": "32", "failed": "31", "cancelled": "31", "running": "36", "queued": "33",
            "waiting": "33", "needs_routing": "35", "no_changes": "2", "skipped": "2"}
FOLLOW_READ_TIMEOUT_S = 120.0  # the stream pings every SSE_PING_SEC (15 s); silence this long = gone


class CliFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def add_parsers(sub: Any) -> None:
    """The runs commands on the `auto-code` parser's subparsers."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", default=None, help="service URL (default http://127.0.0.1:$CLAUDE_CODE_API_PORT)")
        p.add_argument("--json", action="store_true", help="machine-readable output")

    runs = sub.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--ticket")
    runs.add_argument("--status", choices=get_args(RunStatus))
    runs.add_argument("--repository", help="a repository's name (REPOSITORIES_FILE)")
    runs.add_argument("--limit", type=int, default=20)
    common(runs)
    for name, helptext in (("show", "one run with its steps"), ("cancel", "cancel a run"),
                           ("retry", "retry an ended run as a new run")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("run_id")
        common(p)
    logs = sub.add_parser("logs", help="a run's log; --follow until the run ends")
    logs.add_argument("run_id")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the run ends")
    common(logs)


def run(command: str, args: Any, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    try:
        client = _client(args)
    except CliFailure as exc:
        return _fail(exc)
    try:
        with client:
            handler = {"runs": _runs, "show": _show, "logs": _logs, "cancel": _act, "retry": _act}[command]
            return handler(client, command, args, out)
    except CliFailure as exc:
        return _fail(exc)
    except httpx.TimeoutException:
        return _fail(CliFailure(EXIT_SERVICE, f"the service at {client.base_url} did not answer in time"))
    except httpx.TransportError as exc:
        return _fail(CliFailure(EXIT_SERVICE, f"cannot reach the service at {client.base_url}: {exc}"))


def _fail(exc: CliFailure) -> int:
    print(f"auto-code: {exc.message}", file=sys.stderr, flush=True)
    return exc.code


def _client(args: Any) -> httpx.Client:
    from pydantic import ValidationError

    from app.config import Settings
    from app.startup import describe_validation_error

    try:
        settings = Settings()
    except ValidationError as exc:
        raise CliFailure(EXIT_USAGE, describe_validation_error(exc)) from None
    url = args.url or f"http://127.0.0.1:{settings.claude_code_api_port}"
    headers = {}
    if settings.operator_token is not None:
        headers["Authorization"] = f"Bearer {settings.operator_token.get_secret_value()}"
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def _checked(resp: httpx.Response) -> Any:
    """The answer's JSON, or a CliFailure with the exit code its status means."""
    if resp.is_success:
        return resp.json()
    try:
        detail = str(resp.json().get("detail"))
    except (ValueError, AttributeError):
        detail = resp.text[:200]
    if resp.status_code == 401:
        raise CliFailure(EXIT_USAGE, f"the service refused the operator token (set OPERATOR_TOKEN): {detail}")
    if resp.status_code in (404, 400):
        raise CliFailure(EXIT_RUN, detail)
    if resp.status_code >= 500:
        raise CliFailure(EXIT_SERVICE, f"the service failed ({resp.status_code}): {detail}")
    raise CliFailure(EXIT_USAGE, f"the service refused the request ({resp.status_code}): {detail}")


# ----- output -----
def clean(value: object) -> str:
    """One line of hostile text made safe for a terminal: control characters (ESC, BEL, CR, ...)
    become visible escapes, newlines and tabs spaces."""
    text = "" if value is None else str(value)
    out = []
    for ch in text:
        if ch in "\n\t":
            out.append(" ")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
    return "".join(out)


def colours_on(out: IO[str]) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _status(status: str, width: int, colour: bool) -> str:
    padded = status.ljust(width)
    return f"\x1b[{_COLOURS[status]}m{padded}\x1b[0m" if colour and status in _COLOURS else padded


def table(headers: list[str], rows: list[list[str]], out: IO[str], status_col: int | None = None) -> None:
    cells = [[clean(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    colour = colours_on(out)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for row in cells:
        parts = [_status(c, w, colour) if i == status_col else c.ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  ".join(parts).rstrip(), file=out)


def _when(value: datetime | float | None) -> str:
    from app.dashboard.render import when

    return when(value)


def _money(value: float) -> str:
    return f"${value:.4f}"


def _runs(client: httpx.Client, _: str, args: Any, out: IO[str]) -> int:
    from app.dashboard.render import duration
    from app.dashboard.views import run_seconds

    params = {k: v for k, v in (("ticket", args.ticket), ("status", args.status),
                                ("repository", args.repository), ("limit", args.limit)) if v}
    data = _checked(client.get("/runs", params=params))
    if args.json:
        print(json.dumps(data, indent=2), file=out)
        return EXIT_OK
    runs = [RunView.model_validate(r) for r in data]
    if not runs:
        print("no runs", file=out)
        return EXIT_OK
    rows = [[r.run_id, r.ticket, r.repository or "-", r.kind, r.status, _when(r.created_at),
             duration(run_seconds(r)), _money(r.cost_usd), r.pr_url or "-"] for r in runs]
    headers = ["RUN", "TICKET", "REPOSITORY", "KIND", "STATUS", "CREATED (UTC)", "DURATION", "COST", "PR"]
    table(headers, rows, out, status_col=4)
    return EXIT_OK


def _show(client: httpx.Client, _: str, args: Any, out: IO[str]) -> int:
    from app.dashboard.render import duration
    from app.dashboard.views import gate_rounds, run_seconds, step_seconds, step_summary

    data = _checked(client.get(f"/runs/{args.run_id}"))
    code = EXIT_RUN if data.get("status") in BAD_ENDS else EXIT_OK
    if args.json:
        print(json.dumps(data, indent=2), file=out)
        return code
    r = RunView.model_validate(data)
    facts = [("run", r.run_id), ("ticket", r.ticket), ("kind", r.kind), ("status", r.status),
             ("created", f"{_when(r.created_at)} UTC"), ("duration", duration(run_seconds(r))),
             ("turns", str(r.turns)), ("cost", _money(r.cost_usd)), ("branch", r.branch or "-"),
             ("pull request", r.pr_url or "-")]
    facts += [(k, v) for k, v in (("repository", r.repository), ("follow-up of", r.parent_run_id),
                                  ("waiting", r.hold_reason), ("error", r.error)) if v]
    colour = colours_on(out)
    for key, value in facts:
        shown = _status(value, 0, colour) if key == "status" else clean(value)
        print(f"{key:<13}{shown}", file=out)
    print(file=out)
    rows = []
    for s in r.steps:
        rows.append([s.name, s.status, _when(s.started_at), duration(step_seconds(s)), step_summary(s)])
        rows += [[f"  {g.kind} {g.number}", "", "", "", g.verdict] for g in gate_rounds(s.detail)]
    if rows:
        table(["STEP", "STATUS", "STARTED (UTC)", "TOOK", "DETAIL"], rows, out, status_col=1)
    else:
        print("no step has started yet", file=out)
    return code


def _log_line(line: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(line)
    return f"{_when(float(line['ts']))} {clean(line['level']):<7} {clean(line['message'])}"


def _logs(client: httpx.Client, _: str, args: Any, out: IO[str]) -> int:
    if args.follow:
        return _follow(client, args, out)
    after = 0
    while True:
        lines = _checked(client.get(f"/runs/{args.run_id}/logs", params={"after": after, "limit": 500}))
        for line in lines:
            print(_log_line(line, args.json), file=out, flush=True)
        if len(lines) < 500:
            return EXIT_OK
        after = lines[-1]["id"]


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """(event, data) pairs of a text/event-stream; comments (`: ping`) are skipped."""
    event, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


def _follow(client: httpx.Client, args: Any, out: IO[str]) -> int:
    timeout = httpx.Timeout(30.0, read=FOLLOW_READ_TIMEOUT_S)
    with client.stream("GET", f"/runs/{args.run_id}/events", timeout=timeout) as resp:
        if not resp.is_success:
            resp.read()
            _checked(resp)
        status = None
        for event, data in sse_events(resp.iter_lines()):
            payload = json.loads(data)
            if event == "log":
                print(_log_line(payload, args.json), file=out, flush=True)
            elif event == "run":
                status = payload.get("status")
                if status in FINAL_STATUSES:
                    print(f"auto-code: run {clean(args.run_id)} ended: {clean(status)}"
                          + (f" ({clean(payload.get('error'))})" if payload.get("error") else ""),
                          file=sys.stderr, flush=True)
                    return EXIT_RUN if status in BAD_ENDS else EXIT_OK
    raise CliFailure(EXIT_SERVICE, "the event stream ended before the run did")


def _act(client: httpx.Client, command: str, args: Any, out: IO[str]) -> int:
    data = _checked(client.post(f"/runs/{args.run_id}/{command}"))
    if args.json:
        print(json.dumps(data, indent=2), file=out)
    elif command == "cancel":
        print(f"cancelled {clean(args.run_id)}", file=out)
    else:
        print(f"retrying as {clean(data.get('run_id'))} ({clean(data.get('status'))})", file=out)
    return EXIT_OK


__all__ = ["EXIT_OK", "EXIT_RUN", "EXIT_SERVICE", "EXIT_USAGE", "add_parsers", "clean", "run", "sse_events",
           "table"]
