"""The real `ClaudeCode`: the Claude Agent SDK driving the Claude Code CLI (see base.py for the contract).

How each session is run (facts measured here: shared/notes/claude-cli.md):
- implement / fix: `permission_mode="acceptEdits"`, the tool set Read/Write/Edit/Glob/Grep/Bash, Bash
  only through allow rules for read-only git and the configured setup/lint/test commands (other
  commands are refused as "requires approval" and listed in `permission_denials`), deny rules for
  push and network tools, `max_turns`, `max_budget_usd`, `setting_sources=[]` (the target repo's
  `.claude/settings*.json` cannot widen any of this). fix resumes the latest session id from the same
  cwd; the CLI keeps transcripts under CLAUDE_CONFIG_DIR = WORKSPACE_DIR/claude-config so a resume
  works after a restart.
- review: a new session offered only Read/Glob/Grep (Write/Edit/Bash/NotebookEdit also denied), so a
  write attempt comes back to the model as "No such tool available" and the worktree is untouched.
- every call runs under `claude_timeout_sec`; on timeout or cancellation the CLI's process tree is
  killed (the launcher put it in its own session). The CLI's environment is an allowlist (env.py).
- sandbox (`SANDBOX=bwrap`, the default): the launcher execs the CLI inside the run's sandbox
  (app/services/sandbox): the worktree and the run's own CLI state directory
  (`claude-config/runs/<run>`) are its only writable places, HOME and TMPDIR are fresh per call, and
  its only network is the model proxy (app/services/model_proxy) through a loopback port. The CLI
  holds no real key: `ANTHROPIC_API_KEY` is a capability token granted for this one call on the
  run's remaining budget and revoked when the call ends; the proxy adds the real key upstream and
  meters usage, and a call's cost is what the proxy metered. `SANDBOX=none` (development only) runs
  the CLI unconfined with the real key, as before, with a warning per call.
- errors: the CLI ends with a `ResultMessage`; we branch on `is_error` / `terminal_reason` (an API
  error arrives as subtype "success" with is_error=True), never on the subtype alone.
Each call's `ClaudeAgentOptions` (tools, allow/deny rules, budget, the CLI's environment) are built
by options.py; this module runs the sessions and turns their results into `AgentRun`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeSDKError, ResultMessage

from app.config import Settings
from app.errors import AgentError
from app.services.claude_code.base import AgentRequest, AgentRun, ReviewResult
from app.services.claude_code.launcher import bundled_cli, write_launcher
from app.services.claude_code.options import (
    DENIED,
    EDIT_TOOLS,
    MODEL_PORT,
    REVIEW_DENIED,
    REVIEW_TOOLS,
    SAFE_BASH,
    STREAM_BUFFER_BYTES,
    SessionOptions,
    command_rule,
    run_state_dir,
)
from app.services.claude_code.review_parse import parse_review
from app.services.claude_code.session import CostBook, LiveSession, Progress, denial_text, new_pidfile
from app.services.langfuse.base import Tracer
from app.services.model_proxy import ModelProxy, ModelProxyServer, Usage
from app.services.sandbox import Sandbox, build_sandbox

# The option building moved to options.py; these names stay importable from here.
__all__ = ["DENIED", "EDIT_TOOLS", "MODEL_PORT", "REVIEW_DENIED", "REVIEW_TOOLS", "SAFE_BASH",
           "STREAM_BUFFER_BYTES", "SdkClaudeCode", "command_rule", "run_state_dir"]

log = logging.getLogger(__name__)

_FAILED_SUBTYPES = {"error_max_turns": "max_turns", "error_max_budget_usd": "budget_exhausted",
                    "error_during_execution": "execution_error"}


def _usage_of(metered: Usage) -> dict[str, Any]:
    """The call's tokens as the model proxy counted them (the CLI's own figures are estimates)."""
    return {"input_tokens": metered.input_tokens, "output_tokens": metered.output_tokens,
            "cache_creation_input_tokens": metered.cache_creation_input_tokens,
            "cache_read_input_tokens": metered.cache_read_input_tokens, "requests": metered.requests,
            "metered_by": "model_proxy"}


def _cwd_key(cwd: Path) -> Path:
    """A warm-up and its implement must agree on the key; string-only (no filesystem call)."""
    return Path(os.path.normpath(os.path.abspath(cwd)))


class SdkClaudeCode:
    """`ClaudeCode` over the real CLI. One instance per process; one CLI process per call."""

    def __init__(self, settings: Settings, tracer: Tracer | None = None, *,
                 extra_allowed_tools: Sequence[str] = (), sandbox: Sandbox | None = None,
                 model_proxy: ModelProxy | None = None) -> None:
        self._settings = settings
        self._tracer = tracer
        config_dir = settings.claude_config_dir
        self._launcher = write_launcher(config_dir / "bin")
        self._cli = settings.claude_cli_path or bundled_cli()
        self._run_dir = config_dir / "run"
        self._costs = CostBook(config_dir / "auto-code-sessions")
        self._sandbox = sandbox if sandbox is not None else build_sandbox(settings)
        self._own_proxy = False
        if self._sandbox.name != "none" and model_proxy is None:
            # A short private directory: a Unix socket path must fit in 108 bytes.
            sock_dir = Path(tempfile.mkdtemp(prefix="auto-code-model-"))
            model_proxy = ModelProxyServer(settings, sock_dir / "model.sock")
            self._own_proxy = True
        self._proxy = model_proxy if self._sandbox.name != "none" else None
        # Model spend per run so far (this process): each call's grant gets what is left of the budget.
        self._spent: dict[str, float] = {}
        self._options = SessionOptions(settings, launcher=self._launcher, cli=self._cli,
                                       sandbox=self._sandbox, proxy=self._proxy,
                                       extra_allowed_tools=extra_allowed_tools)
        self._warm: dict[Path, LiveSession] = {}
        self._live: set[LiveSession] = set()

    # ----- sessions -----
    def _session(self, cwd: Path, label: str, run_id: str, *, review: bool = False,
                 resume: str | None = None, req: AgentRequest | None = None) -> LiveSession:
        token = None
        if self._proxy is not None:
            budget = self._options.shape(req)[1]
            left = budget - self._spent.get(run_id, 0.0)
            if left <= 0:
                raise AgentError(f"the run's model budget of ${budget:g} is spent",
                                 terminal_reason="budget_exhausted")
            self._proxy.start()
            token = self._proxy.grant(run_id, budget_usd=left)
        else:
            log.warning("sandbox_disabled: Claude Code runs WITHOUT isolation and with the real model key "
                        "(SANDBOX=none)", extra={"run_id": run_id})
        options = self._options.build(cwd, run_id, review=review, resume=resume, token=token, req=req)
        live = LiveSession(options, new_pidfile(self._run_dir), label)
        live.run_id = run_id
        live.token = token
        self._live.add(live)
        return live

    # ----- the interface -----
    async def warm(self, cwd: Path, run_id: str) -> None:
        key = _cwd_key(cwd)
        if key in self._warm:
            return
        try:
            live = self._warm[key] = self._session(cwd, "implement", run_id)
        except AgentError:
            return  # implement raises it again, with the run's record
        try:
            await asyncio.wait_for(live.connect(), min(60.0, self._settings.claude_timeout_sec))
        except BaseException as exc:  # a failed warm-up is retried by implement
            log.warning("claude_warm_failed", extra={"cwd": str(cwd), "error": repr(exc)})
            live.kill()
            if self._warm.get(key) is live:
                del self._warm[key]
            await self._discard(live, graceful=False)
            if not isinstance(exc, Exception):
                raise  # cancellation goes on after the clean-up

    async def implement(self, req: AgentRequest) -> AgentRun:
        live = self._warm.pop(_cwd_key(req.cwd), None)
        # A warm-up has the settings' allow rules and budget: another repository's are a new session.
        if live is not None and (live.failed is not None or live.run_id != req.run_id
                                 or self._options.shape(req) != self._options.shape(None)):
            await self._discard(live, graceful=False)
            live = None
        if live is None:
            live = self._session(req.cwd, "implement", req.run_id, req=req)
        return await self._traced("implement", req, live)

    async def fix(self, req: AgentRequest, session_id: str) -> AgentRun:
        phase = f"fix:{req.gate}" if req.gate else "fix"  # a field of the request, not the prompt
        return await self._traced(phase, req, self._session(req.cwd, phase, req.run_id, resume=session_id,
                                                            req=req), session_id)

    async def review(self, req: AgentRequest) -> ReviewResult:
        try:
            run = await self._traced("review", req, self._session(req.cwd, "review", req.run_id, review=True,
                                                                  req=req))
        except AgentError as exc:
            run = AgentRun(session_id=exc.session_id or "", turns=exc.turns, cost_usd=exc.cost_usd,
                           result_text="", usage=exc.usage)
            return ReviewResult(ok=False, has_issues=False, findings="", run=run,
                                error=f"review session failed ({exc.terminal_reason}): {exc.detail}")
        parsed = parse_review(run.result_text)
        return ReviewResult(ok=parsed.ok, has_issues=parsed.has_issues, findings=parsed.findings, run=run,
                            error=parsed.error)

    async def aclose(self) -> None:
        self._warm.clear()
        for live in list(self._live):
            await self._discard(live, graceful=False)
        if self._own_proxy and self._proxy is not None:
            self._proxy.close()  # joins its thread: quick, and the default executor may be gone
            shutil.rmtree(self._proxy.socket_path.parent, ignore_errors=True)

    # ----- one call -----
    async def _traced(self, phase: str, req: AgentRequest, live: LiveSession,
                      resume: str | None = None) -> AgentRun:
        with self._span(req, phase) as info:
            try:
                run = await self._drive(req, live, resume)
            except AgentError as exc:
                info.update(session_id=exc.session_id, turns=exc.turns, cost_usd=exc.cost_usd,
                            usage=exc.usage, error=f"{exc.terminal_reason}: {exc.detail}")
                raise
            info.update(session_id=run.session_id, turns=run.turns, cost_usd=run.cost_usd, usage=run.usage)
            return run

    @contextlib.contextmanager
    def _span(self, req: AgentRequest, phase: str) -> Iterator[dict[str, Any]]:
        if self._tracer is None:
            yield {}
            return
        with self._tracer.agent_span(ticket_key=req.ticket_key, run_id=req.run_id, phase=phase) as info:
            yield info

    async def _drive(self, req: AgentRequest, live: LiveSession, resume: str | None) -> AgentRun:
        live.log = req.log
        progress = Progress(live.label, req.log)
        baseline = await self._costs.get(resume)
        timeout = self._settings.claude_timeout_sec
        crash: ClaudeSDKError | None = None
        try:
            async with asyncio.timeout(timeout):
                await live.connect()
                await live.client.query(req.prompt)
                async for msg in live.client.receive_response():
                    progress.feed(msg)
        except TimeoutError:
            await self._discard(live, graceful=False)
            raise AgentError(f"Claude Code did not finish within {timeout:g}s; its processes were killed",
                             terminal_reason="timeout", session_id=progress.session_id,
                             turns=progress.assistant_turns, cost_usd=self._metered_cost(live),
                             usage=self._call_usage(live, None)) from None
        except asyncio.CancelledError:
            live.kill()  # first, synchronously: nothing below may run if we are cancelled again
            await self._discard(live, graceful=False)
            raise
        except ClaudeSDKError as exc:  # CLI missing, crashed, or cut its output short
            crash = exc
            await self._discard(live, graceful=False)
        else:
            await self._discard(live, graceful=True)
        # The budget this call's run had (its repository's, else the settings'), for the messages.
        return await self._finish(progress, baseline, crash, live, budget=self._options.shape(req)[1])

    async def _finish(self, progress: Progress, baseline: float, crash: ClaudeSDKError | None,
                      live: LiveSession, *, budget: float) -> AgentRun:
        res = progress.result
        if res is None:
            stderr = " | ".join(live.stderr_tail) or "(no stderr)"
            why = crash or "no result message"
            raise AgentError(f"Claude Code ended without a result: {why}; stderr: {stderr}",
                             terminal_reason="process_error", session_id=progress.session_id,
                             turns=progress.assistant_turns, cost_usd=self._metered_cost(live),
                             usage=self._call_usage(live, None))
        total = float(res.total_cost_usd or 0.0)
        cost = max(0.0, total - baseline)
        await self._costs.set(res.session_id, total)
        metered = self._metered(live)
        usage = self._call_usage(live, res)  # a failed call's tokens are recorded like a finished one's
        if metered is not None:
            cost = metered.cost_usd  # what the proxy counted, not the CLI's own estimate
            if metered.exhausted:
                raise AgentError(f"Claude Code stopped: the run's model budget of ${budget:g} is spent "
                                 "(cut off at the model proxy)",
                                 terminal_reason="budget_exhausted", session_id=res.session_id,
                                 turns=res.num_turns, cost_usd=cost, usage=usage)
        reason = res.terminal_reason or _FAILED_SUBTYPES.get(res.subtype) or (
            "completed" if res.subtype == "success" and not res.is_error else res.subtype)
        if res.is_error or reason != "completed":
            if res.is_error and reason == "completed":
                reason = "api_error" if res.api_error_status else "error"
            why = "; ".join(res.errors or []) or (res.result or "").strip()[:500] or res.subtype
            status = f" (HTTP {res.api_error_status})" if res.api_error_status else ""
            if reason == "budget_exhausted":  # the CLI's own cap (max_budget_usd) stopped it first
                status = f" (the run's model budget of ${budget:g})"
            raise AgentError(f"Claude Code stopped: {reason}{status} after {res.num_turns} turns: {why}",
                             terminal_reason=reason, session_id=res.session_id, turns=res.num_turns,
                             cost_usd=cost, usage=usage)
        return AgentRun(
            session_id=res.session_id, turns=res.num_turns, cost_usd=cost,
            result_text=(res.result or progress.last_text or "").strip(),
            usage=usage,
            permission_denials=[denial_text(d) for d in res.permission_denials or []],
        )

    def _call_usage(self, live: LiveSession, res: ResultMessage | None) -> dict[str, Any]:
        """The call's tokens: the model proxy's metering when the call had a grant (also when the
        CLI ended without a result message), else the CLI's own figures (SANDBOX=none)."""
        metered = self._metered(live)
        if metered is not None:
            return _usage_of(metered)
        return dict(res.usage or {}) if res is not None else {}

    def _metered_cost(self, live: LiveSession) -> float:
        metered = self._metered(live)
        return metered.cost_usd if metered is not None else 0.0

    def _metered(self, live: LiveSession) -> Usage | None:
        if self._proxy is None or live.token is None:
            return None
        if live.final_usage is not None:
            return live.final_usage
        return self._proxy.usage(live.token)

    async def _discard(self, live: LiveSession, *, graceful: bool) -> None:
        self._live.discard(live)
        await live.close(graceful=graceful)
        if self._proxy is not None and live.token is not None and not live.settled:
            # The capability dies with the call; what it spent counts against the run's budget.
            live.settled = True
            self._proxy.revoke(live.token)
            live.final_usage = self._proxy.usage(live.token)
            self._proxy.forget(live.token)  # the proxy keeps no record of finished calls
            self._spent[live.run_id] = self._spent.get(live.run_id, 0.0) + live.final_usage.cost_usd
