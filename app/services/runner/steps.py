"""What each pipeline step does. The DBOS wrappers in `workflow.py` make them durable; here they
are plain async functions over the injected collaborators, each recording its step row and log.

Every function returns a JSON-able dict; a failure the run should record comes back as
`{"error": "<clear reason>"}` (see workflow.py for why failures are returned, not raised).

The outbound check (app/services/outbound_scan.py, `d.scanner`): the change is scanned for every
secret value before `commit`, the objects to send before `push`, title and body before the PR;
a hit fails the run before anything leaves, naming the variable and the file, never the value.
Jira comments and log lines are redacted, and so is every step output holding agent or check
text (DBOS stores step outputs in the database too), before anything is cut to length (a cut
could leave half a value that no longer matches).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from app.errors import AgentError, AutoCodeError
from app.models import Ticket
from app.prompts import ticket_prompts as prompts
from app.services.claude_code.base import AgentRequest, AgentRun, LogFn
from app.services.outbound_scan import describe
from app.services.runner.deps import PipelineDeps
from app.services.runner.gates import failure_signature, gate_detail, tail
from app.services.runner.pr_body import commit_message, pr_title, render_pr_body
from app.services.workspace.base import Worktree

log = logging.getLogger(__name__)


def _wt(wt: dict[str, Any]) -> Worktree:
    return Worktree(path=Path(wt["path"]), branch=wt["branch"], base_sha=wt["base_sha"])


def _logger(d: PipelineDeps, run_id: str) -> LogFn:
    """A log callback for sync callers (CLI stderr): the line goes to the run's log off-loop."""
    loop = asyncio.get_running_loop()

    def emit(line: str) -> None:
        line = line.rstrip()
        if line:
            loop.call_soon_threadsafe(lambda: loop.create_task(d.store.add_log(run_id, line)))

    return emit


def _clean(d: PipelineDeps, out: dict[str, Any]) -> dict[str, Any]:
    """A step output with every secret value redacted (DBOS records it in the database)."""
    return d.scanner.redact_all(out)  # type: ignore[return-value]


def _outbound_error(
    d: PipelineDeps, what: str, items: list[tuple[str, str | bytes]], nothing: str
) -> str | None:
    """None when no secret is in `items` (label, content) nor in a label; else the reason to fail
    with: which variables, in which form, where, and what did not happen. Labels (file names) are
    shown redacted: a file may be named after a secret."""
    hits: dict[str, set[tuple[str, str]]] = {}
    for label, content in items:
        for hit in [*d.scanner.find_forms(label), *d.scanner.find_forms(content)]:
            hits.setdefault(d.scanner.redact(label), set()).add(hit)
    if not hits:
        return None
    found = describe(sorted({h for where in hits.values() for h in where}))
    places = sorted(hits)
    shown = ", ".join(places[:5]) + (f" and {len(places) - 5} more" if len(places) > 5 else "")
    plural = "values" if len({n for where in hits.values() for n, _ in where}) > 1 else "value"
    return f"outbound check: {what} contains the {plural} of {found} in {shown}; {nothing}"


async def _say(d: PipelineDeps, run_id: str, message: str, level: str = "info", **fields: Any) -> None:
    message = d.scanner.redact(message)
    log.log(logging.WARNING if level == "warning" else logging.INFO, message, extra=fields)
    await d.store.add_log(run_id, message, level)


def _missing_worktree(wt: dict[str, Any]) -> dict[str, Any] | None:
    if not Path(wt["path"]).is_dir():
        return {"error": f"worktree {wt['path']} is gone (run resumed on another host?); retry the run"}
    return None


async def _record_agent(d: PipelineDeps, run_id: str, run: AgentRun) -> None:
    await d.store.add_usage(run_id, turns=run.turns, cost_usd=run.cost_usd, session_id=run.session_id)


async def _agent_failed(d: PipelineDeps, run_id: str, err: AgentError) -> str:
    if d.stopping:
        # The CLI was killed by our own shutdown: not the run's failure. Cancellation is not
        # recorded as the step's outcome, so the step runs again after the restart.
        raise asyncio.CancelledError(f"service stopping during an agent call ({err.terminal_reason})")
    await d.store.add_usage(run_id, turns=err.turns, cost_usd=err.cost_usd, session_id=err.session_id)
    return f"agent {err.terminal_reason}: {err.detail}"


# ---------------------------------------------------------------------------- steps
async def start(d: PipelineDeps, run_id: str, td: dict[str, Any]) -> dict[str, Any]:
    """Make sure the run record exists (intake may have crashed before writing it) and is running,
    and fix the pipeline's shape for this run. The options are returned so DBOS records them: a run
    resumed after a restart with another configuration replays the same steps in the same order
    (DBOS matches recorded steps by position, so a gate switched on mid-run would otherwise be fed
    another step's recorded output)."""
    if not await d.store.create_run(run_id, td["key"], json.dumps(td), "running"):
        await d.store.update_run(run_id, status="running")  # created `queued` by intake
    await _say(d, run_id, "run_started", step="start")
    s = d.settings
    return {"enable_setup": s.enable_setup, "enable_review": s.enable_review, "enable_lint": s.enable_lint,
            "enable_tests": s.enable_tests, "dry_run": s.dry_run, "gate_max_rounds": s.gate_max_rounds}


async def prepare(d: PipelineDeps, run_id: str, td: dict[str, Any]) -> dict[str, Any]:
    await d.store.start_step(run_id, "prepare")
    try:
        wt = await d.workspace.prepare(td["key"])
    except AutoCodeError as exc:
        await d.store.finish_step(run_id, "prepare", "failed", {"error": exc.detail})
        return {"error": exc.detail}
    out = {"path": str(wt.path), "branch": wt.branch, "base_sha": wt.base_sha}
    await d.store.update_run(run_id, branch=wt.branch)
    await d.store.finish_step(run_id, "prepare", "succeeded", out)
    await _say(d, run_id, f"worktree ready at {wt.path} on {wt.branch}", step="prepare")
    return out


async def setup(d: PipelineDeps, run_id: str, wt: dict[str, Any]) -> dict[str, Any]:
    await d.store.start_step(run_id, "setup")
    if missing := _missing_worktree(wt):
        await d.store.finish_step(run_id, "setup", "failed", missing)
        return missing
    res = await d.checks.run("setup", Path(wt["path"]))
    detail = {"exit_code": res.exit_code, "duration_s": round(res.duration_s, 3),
              "output": tail(d.scanner.redact(res.output))}
    await d.store.finish_step(run_id, "setup", "succeeded" if res.passed else "failed", detail)
    if not res.passed:
        why = "timed out" if res.timed_out else f"exited {res.exit_code}"
        return {"error": f"setup command {why}: {tail(d.scanner.redact(res.output), 400)}"}
    return {}


async def implement(d: PipelineDeps, run_id: str, td: dict[str, Any], wt: dict[str, Any]) -> dict[str, Any]:
    await d.store.start_step(run_id, "implement")
    if missing := _missing_worktree(wt):
        await d.store.finish_step(run_id, "implement", "failed", missing)
        return missing
    ticket = Ticket.model_validate(td)
    cwd = Path(wt["path"])
    # Start the CLI (~0.3 s to connect) before building the prompt: the task gets the loop at the
    # sleep(0), spawns the CLI and connects while the prompt is built. Today the prompt is cheap, so
    # little is hidden; the overlap grows when the prompt gathers repository context.
    warming = asyncio.create_task(d.claude.warm(cwd, run_id))
    await asyncio.sleep(0)
    prompt = prompts.implementation_prompt(ticket)
    await warming
    req = AgentRequest(cwd=cwd, prompt=prompt, ticket_key=ticket.key, run_id=run_id, log=_logger(d, run_id))
    try:
        run = await d.claude.implement(req)
    except AgentError as exc:
        error = d.scanner.redact(await _agent_failed(d, run_id, exc))
        await d.store.finish_step(run_id, "implement", "failed", {"error": error})
        return {"error": error}
    await _record_agent(d, run_id, run)
    result_text = d.scanner.redact(run.result_text)  # the agent's text is hostile: it may quote a secret
    worktree = _wt(wt)
    changed = await d.workspace.has_changes(worktree)
    diff = await d.workspace.diff_summary(worktree) if changed else ""
    detail = {
        "session_id": run.session_id, "turns": run.turns, "cost_usd": run.cost_usd, "usage": run.usage,
        "has_changes": changed, "diff": diff, "permission_denials": run.permission_denials,
        "summary": tail(result_text, 2000),
    }
    await d.store.finish_step(run_id, "implement", "succeeded", detail)
    if not changed:
        await _say(d, run_id, "agent made no changes", step="implement")
    return _clean(d, {"session_id": run.session_id, "has_changes": changed, "result_text": result_text})


async def review_round(
    d: PipelineDeps, run_id: str, td: dict[str, Any], wt: dict[str, Any], n: int, rounds: list[dict[str, Any]]
) -> dict[str, Any]:
    if n == 0:
        await d.store.start_step(run_id, "review")
    ticket = Ticket.model_validate(td)
    worktree = _wt(wt)
    diff = await d.workspace.diff_summary(worktree)
    req = AgentRequest(
        cwd=worktree.path, prompt=prompts.review_prompt(ticket, diff), ticket_key=ticket.key, run_id=run_id,
        log=_logger(d, run_id),
    )
    result = await d.claude.review(req)
    if result.run is not None:
        # The review session is separate: count its cost and turns, keep the implement session id.
        await d.store.add_usage(run_id, turns=result.run.turns, cost_usd=result.run.cost_usd, session_id=None)
    findings = d.scanner.redact(result.findings)
    entry = {"kind": "check", "round": n, "ok": result.ok, "has_issues": result.has_issues,
             "findings": tail(findings, 2000), "error": result.error}
    rounds = [*rounds, entry]
    await d.store.update_step_detail(run_id, "review", gate_detail(rounds))
    return _clean(d, {
        "rounds": rounds, "ok": result.ok, "has_issues": result.has_issues, "findings": findings,
        "error": result.error, "signature": failure_signature(result.findings),
    })


async def check_round(
    d: PipelineDeps, run_id: str, gate: str, wt: dict[str, Any], n: int, rounds: list[dict[str, Any]]
) -> dict[str, Any]:
    if n == 0:
        await d.store.start_step(run_id, gate)
    if missing := _missing_worktree(wt):
        return {"rounds": rounds, "passed": False, "output": missing["error"], "tail": missing["error"],
                "signature": "missing"}
    res = await d.checks.run(gate, Path(wt["path"]))  # type: ignore[arg-type]
    output = d.scanner.redact(res.output)
    entry = {"kind": "check", "round": n, "passed": res.passed, "exit_code": res.exit_code,
             "timed_out": res.timed_out, "duration_s": round(res.duration_s, 3), "output": tail(output)}
    rounds = [*rounds, entry]
    await d.store.update_step_detail(run_id, gate, gate_detail(rounds))
    await _say(d, run_id, f"{gate} round {n}: {'passed' if res.passed else 'failed'}", step=gate)
    return _clean(d, {"rounds": rounds, "passed": res.passed, "output": output, "tail": tail(output, 1000),
                      "signature": failure_signature(res.output)})


async def fix(
    d: PipelineDeps, run_id: str, gate: str, wt: dict[str, Any], session_id: str, failure: str, n: int,
    rounds: list[dict[str, Any]],
) -> dict[str, Any]:
    """Resume the implement session (same cwd, latest session id) with the gate's failure."""
    if missing := _missing_worktree(wt):
        return missing
    prompt = prompts.fix_prompt(gate, failure, n, d.settings.check_output_max_chars)
    req = AgentRequest(cwd=Path(wt["path"]), prompt=prompt, ticket_key=run_id.split(":")[0], run_id=run_id,
                       log=_logger(d, run_id), phase="fix", gate=gate, round=n)
    try:
        run = await d.claude.fix(req, session_id)
    except AgentError as exc:
        error = d.scanner.redact(await _agent_failed(d, run_id, exc))
        rounds = [*rounds, {"kind": "fix", "round": n, "error": error}]
        await d.store.finish_step(run_id, gate, "failed", gate_detail(rounds, "error"))
        return {"error": error}
    await _record_agent(d, run_id, run)
    rounds = [*rounds, {"kind": "fix", "round": n, "session_id": run.session_id, "turns": run.turns,
                        "cost_usd": run.cost_usd}]
    await d.store.update_step_detail(run_id, gate, gate_detail(rounds))
    await _say(d, run_id, f"{gate} fix round {n} done", step=gate)
    return _clean(d, {"rounds": rounds, "session_id": run.session_id})


async def gate_done(
    d: PipelineDeps, run_id: str, gate: str, rounds: list[dict[str, Any]], outcome: str
) -> dict[str, Any]:
    detail = gate_detail(rounds, outcome)  # type: ignore[arg-type]
    # An unreadable review is reported in the PR but does not block it.
    passed = outcome == "passed" or (gate == "review" and outcome == "error")
    status = "succeeded" if passed else "failed"
    await d.store.finish_step(run_id, gate, status, detail)
    return {"outcome": outcome, "fix_rounds": detail["fix_rounds"]}


async def commit(d: PipelineDeps, run_id: str, td: dict[str, Any], wt: dict[str, Any]) -> dict[str, Any]:
    await d.store.start_step(run_id, "commit")
    if missing := _missing_worktree(wt):
        await d.store.finish_step(run_id, "commit", "failed", missing)
        return missing
    message = commit_message(Ticket.model_validate(td))
    try:
        pending: list[tuple[str, str | bytes]] = [*await d.workspace.pending_files(_wt(wt)),
                                                  ("the commit message", message)]
    except AutoCodeError as exc:  # what cannot be read cannot be checked: nothing leaves
        error = f"{exc.detail}; nothing was committed"
        await d.store.finish_step(run_id, "commit", "failed", {"error": error})
        return {"error": error}
    if error := _outbound_error(d, "the change", pending, "nothing was committed"):
        await d.store.finish_step(run_id, "commit", "failed", {"error": error})
        return {"error": error}
    try:
        sha = await d.workspace.commit(_wt(wt), message)
    except AutoCodeError as exc:
        # Re-run after a crash that happened after the commit: nothing left to commit is fine.
        if not await d.workspace.has_changes(_wt(wt)):
            await d.store.finish_step(run_id, "commit", "failed", {"error": exc.detail})
            return {"error": exc.detail}
        sha = None
    await d.store.finish_step(run_id, "commit", "succeeded", {"sha": sha, "message": message})
    return {"sha": sha}


async def push(d: PipelineDeps, run_id: str, wt: dict[str, Any]) -> dict[str, Any]:
    await d.store.start_step(run_id, "push")
    try:
        outgoing = await d.workspace.outgoing_objects(_wt(wt))
    except AutoCodeError as exc:
        error = f"{exc.detail}; nothing was pushed"
        await d.store.finish_step(run_id, "push", "failed", {"error": error})
        return {"error": error}
    if error := _outbound_error(d, "the push", outgoing, "nothing was pushed"):
        await d.store.finish_step(run_id, "push", "failed", {"error": error})
        return {"error": error}
    try:
        await d.workspace.push(_wt(wt))
    except AutoCodeError as exc:
        await d.store.finish_step(run_id, "push", "failed", {"error": exc.detail})
        return {"error": exc.detail}
    await d.store.finish_step(run_id, "push", "succeeded", {"branch": wt["branch"]})
    return {}


async def pull_request(
    d: PipelineDeps, run_id: str, td: dict[str, Any], wt: dict[str, Any], summary: str,
    gates: dict[str, dict[str, Any]], review_findings: str | None,
) -> dict[str, Any]:
    await d.store.start_step(run_id, "pull_request")
    ticket = Ticket.model_validate(td)
    row = await d.store.get_run_row(run_id) or {}
    diff = ""
    if Path(wt["path"]).is_dir():
        diff = await d.workspace.diff_summary(_wt(wt))
    redact = d.scanner.redact  # the agent's texts are redacted; what the service adds is checked
    body = render_pr_body(
        ticket, summary=redact(summary), diff_summary=diff, gates=gates,
        review_findings=redact(review_findings) if review_findings else review_findings,
        turns=row.get("turns") or 0, cost_usd=row.get("cost_usd") or 0.0, run_id=run_id,
    )
    title = pr_title(ticket)
    if error := _outbound_error(d, "the pull request", [("its title", title), ("its body", body)],
                                "no pull request was opened"):
        await d.store.finish_step(run_id, "pull_request", "failed", {"error": error})
        return {"error": error}
    try:
        pr = await d.pull_requests.open_or_reuse(
            head=wt["branch"], base=d.settings.base_branch, title=title, body=body
        )
    except AutoCodeError as exc:
        await d.store.finish_step(run_id, "pull_request", "failed", {"error": exc.detail})
        return {"error": exc.detail}
    await d.store.update_run(run_id, pr_url=pr.html_url)
    await d.store.finish_step(run_id, "pull_request", "succeeded",
                              {"number": pr.number, "url": pr.html_url, "created": pr.created})
    await _say(d, run_id, f"pull request {'opened' if pr.created else 'updated'}: {pr.html_url}",
               step="pull_request")
    return {"pr_url": pr.html_url, "number": pr.number}


async def report(
    d: PipelineDeps, run_id: str, td: dict[str, Any], outcome: str, pr_url: str | None, text: str | None
) -> None:
    """Tell the ticket what happened. Reporting is best effort: its failure never fails the run."""
    if d.jira is None:
        await d.store.finish_step(run_id, "report", "skipped", {"reason": "Jira reporting not configured"})
        return
    await d.store.start_step(run_id, "report")
    key = td["key"]
    text = d.scanner.redact(text) if text else text  # a comment leaves: never with a secret in it
    try:
        if outcome == "succeeded" and pr_url:
            await d.jira.comment(key, d.scanner.redact(f"auto-code opened a pull request: {pr_url}"))
            await d.jira.link_pull_request(key, pr_url, f"Pull request for {key}")
            if d.settings.jira_done_transition:
                await d.jira.transition(key, d.settings.jira_done_transition)
        elif outcome == "no_changes":
            said = (text or "")[:3000]
            await d.jira.comment(key, f"auto-code made no changes for this ticket. The agent said:\n{said}")
        elif outcome == "failed":
            await d.jira.comment(key, f"auto-code could not finish this ticket (run {run_id}): {text}"[:3000])
        else:
            await d.store.finish_step(run_id, "report", "skipped", {"reason": outcome})
            return
    except Exception as exc:  # best effort: whatever goes wrong, the run's outcome stands
        detail = exc.detail if isinstance(exc, AutoCodeError) else f"{type(exc).__name__}: {exc}"
        await d.store.finish_step(run_id, "report", "failed", {"error": detail})
        await _say(d, run_id, f"reporting to Jira failed: {detail}", "warning", step="report")
        return
    await d.store.finish_step(run_id, "report", "succeeded", {"outcome": outcome})


async def cleanup(d: PipelineDeps, run_id: str, wt: dict[str, Any], keep: bool) -> None:
    if keep:
        hint = f"git worktree remove {wt['path']} --force"
        await d.store.finish_step(run_id, "cleanup", "skipped", {"kept": wt["path"], "remove_with": hint})
        await _say(d, run_id, f"worktree kept for inspection; remove it with: {hint}", step="cleanup")
        return
    await d.store.start_step(run_id, "cleanup")
    try:
        await d.workspace.remove(_wt(wt))
    except Exception as exc:  # a worktree we could not remove must not turn a PR into a failed run
        detail = exc.detail if isinstance(exc, AutoCodeError) else f"{type(exc).__name__}: {exc}"
        await d.store.finish_step(run_id, "cleanup", "failed", {"error": detail})
        await _say(d, run_id, f"worktree not removed: {detail}", "warning", step="cleanup")
        return
    await d.store.finish_step(run_id, "cleanup", "succeeded", {})


async def finish(d: PipelineDeps, run_id: str, status: str, error: str | None) -> str:
    # Export this ticket's spans before the run shows as ended, so whoever sees the final status
    # finds the trace complete. Flushing can wait on the network: off the event loop.
    await asyncio.to_thread(d.tracer.flush)
    if status == "failed":
        await d.store.fail_running_steps(run_id, error or "failed")
    await d.store.update_run(run_id, status=status, error=error)
    level = "warning" if status == "failed" else "info"
    await _say(d, run_id, f"run_finished status={status}" + (f" error={error}" if error else ""), level,
               step="finish")
    return status
