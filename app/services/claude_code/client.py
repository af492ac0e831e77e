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
- errors: the CLI ends with a `ResultMessage`; we branch on `is_error` / `terminal_reason` (an API
  error arrives as subtype "success" with is_error=True), never on the subtype alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKError

from app.config import Settings
from app.errors import AgentError
from app.prompts.ticket_prompts import parse_fix_header
from app.services.claude_code.base import AgentRequest, AgentRun, ReviewResult
from app.services.claude_code.env import agent_env, names_to_drop
from app.services.claude_code.launcher import bundled_cli, write_launcher
from app.services.claude_code.review_parse import parse_review
from app.services.claude_code.session import CostBook, LiveSession, Progress, denial_text, new_pidfile
from app.services.langfuse.base import Tracer

log = logging.getLogger(__name__)

EDIT_TOOLS = ["Read", "Write", "Edit", "Glob", "Grep", "Bash"]
REVIEW_TOOLS = ["Read", "Glob", "Grep"]
REVIEW_DENIED = ["Write", "Edit", "MultiEdit", "NotebookEdit", "Bash", "WebFetch", "WebSearch", "Task"]
# No bare "Read"/"Write"/"Edit" allow rules: a bare tool name allows it on ANY path. Without them the
# CLI's own rules apply - edits (acceptEdits) and reads inside the cwd (the worktree) only.
# Bash the agent may run without asking: listing and `git status`. Not `git diff/log/show`: they take
# `--output=<file>`, which can overwrite the worktree's `.git` pointer. The enabled checks are added.
SAFE_BASH = ["Bash(ls:*)", "Bash(pwd)", "Bash(git status:*)"]
DENIED = ["Bash(git push:*)", "Bash(git remote:*)", "Bash(git config:*)", "Bash(curl:*)", "Bash(wget:*)",
          "Bash(ssh:*)", "Bash(scp:*)", "Bash(nc:*)", "WebFetch", "WebSearch"]
_RULE_WORD = re.compile(r"^[\w./@=+-]+$")  # what may go into a `Bash(...)` rule unquoted
_FAILED_SUBTYPES = {"error_max_turns": "max_turns", "error_max_budget_usd": "budget_exhausted",
                    "error_during_execution": "execution_error"}
STREAM_BUFFER_BYTES = 16 * 1024 * 1024  # a Read of a big file is one stdout line (SDK default 1 MB, #98)


def _cwd_key(cwd: Path) -> Path:
    """A warm-up and its implement must agree on the key; string-only (no filesystem call)."""
    return Path(os.path.normpath(os.path.abspath(cwd)))


def command_rule(argv: Sequence[str]) -> str | None:
    """`["pnpm", "lint"]` -> `Bash(pnpm lint:*)`; None if a word would break the rule syntax."""
    if argv and all(_RULE_WORD.match(word) for word in argv):
        return f"Bash({' '.join(argv)}:*)"
    return None


class SdkClaudeCode:
    """`ClaudeCode` over the real CLI. One instance per process; one CLI process per call."""

    def __init__(self, settings: Settings, tracer: Tracer | None = None, *,
                 extra_allowed_tools: Sequence[str] = ()) -> None:
        self._settings = settings
        self._tracer = tracer
        config_dir = settings.claude_config_dir
        self._launcher = write_launcher(config_dir / "bin")
        self._cli = settings.claude_cli_path or bundled_cli()
        self._run_dir = config_dir / "run"
        self._costs = CostBook(config_dir / "auto-code-sessions")
        # Only the checks the pipeline will run: a disabled gate's command is no reason to let the
        # agent execute (possibly agent-edited) code.
        commands = [cmd for cmd, on in ((settings.setup_command, settings.enable_setup),
                                        (settings.lint_command, settings.enable_lint),
                                        (settings.test_command, settings.enable_tests)) if on]
        checks = [command_rule(c) for c in commands]
        self._allowed = [*SAFE_BASH, *(r for r in checks if r), *extra_allowed_tools]
        self._warm: dict[Path, LiveSession] = {}
        self._live: set[LiveSession] = set()

    # ----- options -----
    def _options(self, cwd: Path, *, review: bool, resume: str | None = None) -> ClaudeAgentOptions:
        s = self._settings
        explicit = agent_env(s, os.environ)
        env = {**explicit, "AUTO_CODE_CLI": self._cli,
               "AUTO_CODE_DROP": ",".join(names_to_drop(os.environ, explicit))}
        common: dict[str, Any] = dict(
            cwd=str(cwd), cli_path=str(self._launcher), env=env, setting_sources=[], resume=resume,
            model=s.claude_model or None, system_prompt={"type": "preset", "preset": "claude_code"},
            max_buffer_size=STREAM_BUFFER_BYTES, max_budget_usd=s.claude_max_budget_usd,
        )
        if review:
            return ClaudeAgentOptions(**common, permission_mode="default", tools=list(REVIEW_TOOLS),
                                      allowed_tools=[], disallowed_tools=list(REVIEW_DENIED),
                                      max_turns=s.claude_review_max_turns)
        return ClaudeAgentOptions(**common, permission_mode="acceptEdits", tools=list(EDIT_TOOLS),
                                  allowed_tools=list(self._allowed), disallowed_tools=list(DENIED),
                                  max_turns=s.claude_max_turns)

    def _session(self, cwd: Path, label: str, *, review: bool = False,
                 resume: str | None = None) -> LiveSession:
        options = self._options(cwd, review=review, resume=resume)
        live = LiveSession(options, new_pidfile(self._run_dir), label)
        self._live.add(live)
        return live

    # ----- the interface -----
    async def warm(self, cwd: Path) -> None:
        key = _cwd_key(cwd)
        if key in self._warm:
            return
        live = self._warm[key] = self._session(cwd, "implement")
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
        if live is None or live.failed is not None:
            live = self._session(req.cwd, "implement")
        return await self._traced("implement", req, live)

    async def fix(self, req: AgentRequest, session_id: str) -> AgentRun:
        header = parse_fix_header(req.prompt)
        phase = f"fix:{header[0]}" if header else "fix"
        return await self._traced(phase, req, self._session(req.cwd, phase, resume=session_id), session_id)

    async def review(self, req: AgentRequest) -> ReviewResult:
        try:
            run = await self._traced("review", req, self._session(req.cwd, "review", review=True))
        except AgentError as exc:
            run = AgentRun(session_id=exc.session_id or "", turns=exc.turns, cost_usd=exc.cost_usd,
                           result_text="")
            return ReviewResult(ok=False, has_issues=False, findings="", run=run,
                                error=f"review session failed ({exc.terminal_reason}): {exc.detail}")
        parsed = parse_review(run.result_text)
        return ReviewResult(ok=parsed.ok, has_issues=parsed.has_issues, findings=parsed.findings, run=run,
                            error=parsed.error)

    async def aclose(self) -> None:
        self._warm.clear()
        for live in list(self._live):
            await self._discard(live, graceful=False)

    # ----- one call -----
    async def _traced(self, phase: str, req: AgentRequest, live: LiveSession,
                      resume: str | None = None) -> AgentRun:
        with self._span(req, phase) as info:
            try:
                run = await self._drive(req, live, resume)
            except AgentError as exc:
                info.update(session_id=exc.session_id, turns=exc.turns, cost_usd=exc.cost_usd,
                            error=f"{exc.terminal_reason}: {exc.detail}")
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
                             turns=progress.assistant_turns) from None
        except asyncio.CancelledError:
            live.kill()  # first, synchronously: nothing below may run if we are cancelled again
            await self._discard(live, graceful=False)
            raise
        except ClaudeSDKError as exc:  # CLI missing, crashed, or cut its output short
            crash = exc
            await self._discard(live, graceful=False)
        else:
            await self._discard(live, graceful=True)
        return await self._finish(progress, baseline, crash, live)

    async def _finish(self, progress: Progress, baseline: float, crash: ClaudeSDKError | None,
                      live: LiveSession) -> AgentRun:
        res = progress.result
        if res is None:
            stderr = " | ".join(live.stderr_tail) or "(no stderr)"
            why = crash or "no result message"
            raise AgentError(f"Claude Code ended without a result: {why}; stderr: {stderr}",
                             terminal_reason="process_error", session_id=progress.session_id,
                             turns=progress.assistant_turns)
        total = float(res.total_cost_usd or 0.0)
        cost = max(0.0, total - baseline)
        await self._costs.set(res.session_id, total)
        reason = res.terminal_reason or _FAILED_SUBTYPES.get(res.subtype) or (
            "completed" if res.subtype == "success" and not res.is_error else res.subtype)
        if res.is_error or reason != "completed":
            if res.is_error and reason == "completed":
                reason = "api_error" if res.api_error_status else "error"
            why = "; ".join(res.errors or []) or (res.result or "").strip()[:500] or res.subtype
            status = f" (HTTP {res.api_error_status})" if res.api_error_status else ""
            raise AgentError(f"Claude Code stopped: {reason}{status} after {res.num_turns} turns: {why}",
                             terminal_reason=reason, session_id=res.session_id, turns=res.num_turns,
                             cost_usd=cost)
        return AgentRun(
            session_id=res.session_id, turns=res.num_turns, cost_usd=cost,
            result_text=(res.result or progress.last_text or "").strip(), usage=dict(res.usage or {}),
            permission_denials=[denial_text(d) for d in res.permission_denials or []],
        )

    async def _discard(self, live: LiveSession, *, graceful: bool) -> None:
        self._live.discard(live)
        await live.close(graceful=graceful)
