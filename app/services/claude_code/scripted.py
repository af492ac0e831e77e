"""`ScriptedClaudeCode`: an offline `ClaudeCode` that really edits the worktree from a small script.

It records every call in `calls` (phase, prompt, session_id, cwd, ticket_key, run_id) so tests
assert on what the pipeline asked for, and it changes real files so the rest of the pipeline (diff,
commit, push, PR) runs for real.

Script format (a dict, or JSON in the file named by the environment variable MOCK_CLAUDE_SCRIPT, so
a service started as a subprocess can be scripted):

    {
      "delay_s": 0.0,                       # sleep before every call (cancellable; restart tests)
      "fork_on_fix": false,                 # each fix reports a NEW session id (as a forked resume
                                            #   does): callers must always resume the latest one
      "tickets": {
        "PROJ-1": {                         # or "*" for every ticket without its own entry
          "implement": [ACTION, ...],
          "fix:lint": [[ACTION, ...], ...], # one list per round (the last repeats); or a flat
          "fix": [[ACTION, ...]],           #   list of actions for every round; "fix" = any gate
          "review": ["HAS_ISSUES: true\\nFINDINGS:\\n- a.py:1 bug", "HAS_ISSUES: false\\nFINDINGS:\\nnone"],
          "errors": {"implement": "max_turns", "fix:test": "api_error"},   # raise AgentError
          "result": "Implemented the thing.", # result_text of implement/fix
          "cost_usd": 0.0,                  # what each implement/fix call reports as metered,
          "usage": {"input_tokens": 0}      #   with these token counts (the model proxy's keys);
                                            #   a scripted error spent them too (as a real one does)
        }
      }
    }

ACTION is one of {"write": PATH, "content": TEXT}, {"append": PATH, "content": TEXT},
{"replace": PATH, "old": TEXT, "new": TEXT}, {"delete": PATH}. PATH is relative to the worktree and
may not leave it. TEXT may use {key}, {slug} and {summary} (the ticket summary, read back from the
prompt's <summary> tag). Review outputs are used in order, the last one repeating. With no entry
for a ticket the default script writes `docs/tickets/<key-lowercase>.md` with the summary, fix rounds
change nothing, and the review finds no issues.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import AgentError
from app.services.claude_code.base import AgentRequest, AgentRun, ReviewResult
from app.services.claude_code.review_parse import parse_review

SCRIPT_ENV = "MOCK_CLAUDE_SCRIPT"
_SUMMARY_RE = re.compile(r"<summary>(.*?)</summary>", re.DOTALL)
DEFAULT_TICKET: dict[str, Any] = {
    "implement": [{"write": "docs/tickets/{slug}.md", "content": "# {key}: {summary}\n"}],
    "review": ["HAS_ISSUES: false\nFINDINGS:\nnone"],
}


@dataclass(frozen=True)
class MockCall:
    phase: str  # implement | review | fix:<gate>
    prompt: str
    session_id: str
    cwd: Path
    ticket_key: str
    run_id: str


class ScriptedClaudeCode:
    """Offline `ClaudeCode`. `script` follows the module docstring; `delay_s` overrides its delay."""

    def __init__(self, script: dict[str, Any] | None = None, *, delay_s: float | None = None) -> None:
        self.script: dict[str, Any] = script or {}
        self.delay_s = float(delay_s if delay_s is not None else self.script.get("delay_s", 0.0))
        self.calls: list[MockCall] = []
        self.warmed: list[Path] = []
        self.closed = False
        self._reviews: dict[str, int] = {}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ScriptedClaudeCode:
        """Read the script from the JSON file named by MOCK_CLAUDE_SCRIPT (default script if unset)."""
        path = (environ if environ is not None else os.environ).get(SCRIPT_ENV)
        if not path:
            return cls()
        return cls(json.loads(Path(path).read_text()))

    def _ticket(self, key: str) -> dict[str, Any]:
        tickets = self.script.get("tickets", {})
        return tickets.get(key) or tickets.get("*") or DEFAULT_TICKET

    # ----- the interface -----
    async def warm(self, cwd: Path, run_id: str) -> None:
        self.warmed.append(cwd)

    async def implement(self, req: AgentRequest) -> AgentRun:
        session_id = f"mock-{req.ticket_key.lower()}-{uuid.uuid4().hex[:8]}"
        if req.gate and f"fix:{req.gate}" in self._ticket(req.ticket_key):
            # A follow-up on a PR that could not resume (a mock leaves no transcript) starts a new
            # session for its trigger: the script of that follow-up ("fix:ci_fix"), not implement's.
            return await self.fix(req, session_id)
        actions = self._ticket(req.ticket_key).get("implement", [])
        return await self._act("implement", req, session_id, actions)

    async def fix(self, req: AgentRequest, session_id: str) -> AgentRun:
        rnd = req.round or 1 + sum(c.phase.startswith("fix") for c in self.calls)
        phase = f"fix:{req.gate}" if req.gate else "fix"
        ticket = self._ticket(req.ticket_key)
        rounds = ticket.get(phase, ticket.get("fix", []))
        if rounds and all(isinstance(r, dict) for r in rounds):
            actions = rounds  # a flat list: the same actions every round
        else:
            actions = rounds[min(rnd, len(rounds)) - 1] if rounds else []
        run = await self._act(phase, req, session_id, actions)  # resumes the id it was given
        if self.script.get("fork_on_fix"):
            run = dataclasses.replace(run, session_id=f"{session_id}.{len(self.calls)}")
        return run

    async def review(self, req: AgentRequest) -> ReviewResult:
        session_id = f"mock-review-{uuid.uuid4().hex[:8]}"
        try:
            run = await self._act("review", req, session_id, [])
        except AgentError as exc:
            return ReviewResult(ok=False, has_issues=False, findings="", run=None,
                                error=f"review session failed ({exc.terminal_reason}): {exc.detail}")
        outputs = self._ticket(req.ticket_key).get("review") or DEFAULT_TICKET["review"]
        n = self._reviews.get(req.run_id, 0)
        self._reviews[req.run_id] = n + 1
        text = outputs[min(n, len(outputs) - 1)]
        run = AgentRun(session_id=run.session_id, turns=run.turns, cost_usd=run.cost_usd, result_text=text,
                       usage=run.usage)
        parsed = parse_review(text)
        return ReviewResult(ok=parsed.ok, has_issues=parsed.has_issues, findings=parsed.findings, run=run,
                            error=parsed.error)

    async def aclose(self) -> None:
        self.closed = True

    # ----- doing it -----
    async def _act(self, phase: str, req: AgentRequest, session_id: str,
                   actions: list[dict[str, Any]]) -> AgentRun:
        self.calls.append(MockCall(phase, req.prompt, session_id, req.cwd, req.ticket_key, req.run_id))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        ticket = self._ticket(req.ticket_key)
        if reason := ticket.get("errors", {}).get(phase):
            raise AgentError(f"scripted failure in {phase}: {reason}", terminal_reason=reason,
                             session_id=session_id, turns=1, cost_usd=float(ticket.get("cost_usd", 0.0)),
                             usage=ticket.get("usage"))
        values = {"key": req.ticket_key, "slug": req.ticket_key.lower(), "summary": _summary(req.prompt)}
        try:
            for action in actions:
                await asyncio.to_thread(_apply, req.cwd, action, values)
        except (OSError, ValueError, KeyError) as exc:  # a script that does not fit the worktree
            raise AgentError(f"mock script failed in {phase}: {exc}", terminal_reason="execution_error",
                             session_id=session_id, turns=1) from exc
        if req.log:
            req.log(f"mock-claude[{phase}] applied {len(actions)} action(s)")
        result = ticket.get("result") or f"Scripted {phase} for {req.ticket_key}: {len(actions)} change(s)."
        usage = dict(ticket.get("usage") or {"input_tokens": 0, "output_tokens": 0})
        return AgentRun(session_id=session_id, turns=len(actions) + 1,
                        cost_usd=float(ticket.get("cost_usd", 0.0)), result_text=result, usage=usage)


def _summary(prompt: str) -> str:
    m = _SUMMARY_RE.search(prompt)
    return m.group(1).strip() if m else ""


def _fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text


def _inside(cwd: Path, rel: str, values: dict[str, str]) -> Path:
    root = cwd.resolve()
    target = (root / _fill(rel, values)).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"mock script path escapes the worktree: {rel!r}")
    return target


def _apply(cwd: Path, action: dict[str, Any], values: dict[str, str]) -> None:
    if "write" in action or "append" in action:
        target = _inside(cwd, action.get("write") or action["append"], values)
        target.parent.mkdir(parents=True, exist_ok=True)
        content = _fill(action.get("content", ""), values)
        with target.open("a" if "append" in action else "w", encoding="utf-8") as fh:
            fh.write(content)
    elif "replace" in action:
        target = _inside(cwd, action["replace"], values)
        text = target.read_text(encoding="utf-8")
        old, new = _fill(action["old"], values), _fill(action.get("new", ""), values)
        if old not in text:
            raise ValueError(f"mock replace: {action['old']!r} not found in {action['replace']}")
        target.write_text(text.replace(old, new, 1), encoding="utf-8")
    elif "delete" in action:
        _inside(cwd, action["delete"], values).unlink(missing_ok=True)
    else:
        raise ValueError(f"unknown mock action: {sorted(action)}")
