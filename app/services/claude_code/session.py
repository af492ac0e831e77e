"""One live Claude Code CLI process behind a `ClaudeSDKClient`, and what it reported.

`LiveSession` owns the process: it connects once (a warm-up and the first prompt may race), knows
the CLI's pid (written by the launcher, see launcher.py), routes the CLI's stderr to whoever is
listening now (the run's log) and keeps the last lines for error messages, closes gracefully (stdin
EOF lets the CLI flush its transcript, which `resume` needs) and kills the whole process tree when
a call times out or is cancelled. `Progress` folds the message stream into what a call returns.
`CostBook` remembers each session's cumulative cost on the workspace volume, because the CLI
reports `total_cost_usd` cumulatively across resumes and a fix round's own cost is the difference
(a session with no record - e.g. its file was deleted - counts its whole cumulative cost once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ToolUseBlock,
)

from app.services.claude_code.base import LogFn
from app.services.claude_code.launcher import kill_tree, read_pid
from app.services.model_proxy.base import Usage

log = logging.getLogger(__name__)
_SESSION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
CLOSE_TIMEOUT_S = 15.0  # the SDK's own close escalates EOF -> TERM -> KILL within ~15 s


def safe_log(fn: LogFn | None, line: str) -> None:
    """Call the run's log callback; a broken callback must not break the session."""
    if fn is None:
        return
    try:
        fn(line)
    except Exception:  # the run log is best effort
        log.debug("agent_log_callback_failed", exc_info=True)


class LiveSession:
    """A CLI process for one cwd and one set of options. Not shared between runs."""

    def __init__(self, options: ClaudeAgentOptions, pidfile: Path, label: str) -> None:
        self.label = label
        self.pidfile = pidfile
        self.log: LogFn | None = None
        self.stderr_tail: deque[str] = deque(maxlen=20)
        options.stderr = self._on_stderr
        options.env = {**options.env, "AUTO_CODE_PIDFILE": str(pidfile)}
        self.client = ClaudeSDKClient(options)
        self.pid: int | None = None
        self.connected = False
        self.failed: BaseException | None = None
        self.run_id = ""  # the run this CLI works for (its sandbox and grant are that run's)
        self.token: str | None = None  # the model proxy capability of this call, if sandboxed
        self.settled = False  # the grant was revoked and its spend counted
        self.final_usage: Usage | None = None  # what the proxy metered for this call, once settled
        self._lock = asyncio.Lock()

    def _on_stderr(self, line: str) -> None:
        self.stderr_tail.append(line)
        safe_log(self.log, f"claude[{self.label}] stderr: {line}")

    async def connect(self) -> None:
        """Start the CLI (idempotent: a warm-up and the first prompt may both call it)."""
        async with self._lock:
            if self.connected:
                return
            if self.failed is not None:
                raise self.failed
            try:
                await self.client.connect()
            except BaseException as exc:
                self.failed = exc
                self._learn_pid()
                self.kill()
                raise
            self._learn_pid()
            self.connected = True

    def _learn_pid(self) -> None:
        if self.pid is None:
            self.pid = read_pid(self.pidfile)

    def kill(self) -> None:
        """SIGKILL the CLI and everything it started. Synchronous on purpose: it must run even
        while the calling task is being cancelled."""
        self._learn_pid()
        if self.pid is not None:
            kill_tree(self.pid)

    async def close(self, *, graceful: bool) -> None:
        """Disconnect the SDK client (reaps the process); then kill any straggler in its group.
        Never raises; bounded in time even if the SDK's close misbehaves."""
        if not graceful:
            self.kill()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(self.client.disconnect(), CLOSE_TIMEOUT_S)
        self.kill()  # background jobs the agent left in the CLI's group die with it
        self.connected = False
        with contextlib.suppress(OSError):
            self.pidfile.unlink()


class Progress:
    """Folds the SDK message stream: latest session id, last text, tool calls, the result."""

    def __init__(self, label: str, log_fn: LogFn | None) -> None:
        self.label = label
        self.log_fn = log_fn
        self.session_id: str | None = None
        self.last_text = ""
        self.assistant_turns = 0
        self.result: ResultMessage | None = None

    def feed(self, msg: Any) -> None:
        if isinstance(msg, SystemMessage) and msg.subtype == "init":
            self.session_id = msg.data.get("session_id") or self.session_id
        elif isinstance(msg, AssistantMessage):
            self.assistant_turns += 1
            self.session_id = msg.session_id or self.session_id
            texts = [b.text for b in msg.content if isinstance(b, TextBlock) and b.text.strip()]
            if texts:
                self.last_text = "\n".join(texts)
            for block in msg.content:
                if isinstance(block, ToolUseBlock):
                    safe_log(self.log_fn, f"claude[{self.label}] tool {block.name} {_tool_hint(block.input)}")
        elif isinstance(msg, ResultMessage):
            self.result = msg
            self.session_id = msg.session_id or self.session_id
            safe_log(self.log_fn, f"claude[{self.label}] result {msg.subtype} reason={msg.terminal_reason} "
                                  f"turns={msg.num_turns} cost_usd={msg.total_cost_usd}")


def _tool_hint(tool_input: dict[str, Any]) -> str:
    for key in ("file_path", "path", "pattern", "command"):
        if isinstance(value := tool_input.get(key), str):
            return value[:200].replace("\n", " ")
    return ""


def denial_text(denial: Any) -> str:
    """`Bash: git push` from the CLI's permission-denial record (a dict)."""
    if isinstance(denial, dict):
        return f"{denial.get('tool_name', '?')}: {_tool_hint(denial.get('tool_input') or {})}".strip()
    return str(denial)


class CostBook:
    """session_id -> cumulative total_cost_usd, one small JSON file per session under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, session_id: str) -> Path | None:
        return self.root / f"{session_id}.json" if _SESSION_ID_RE.match(session_id) else None

    async def get(self, session_id: str | None) -> float:
        path = self._path(session_id) if session_id else None
        if path is None:
            return 0.0

        def read() -> float:
            try:
                return float(json.loads(path.read_text())["total_cost_usd"])
            except (OSError, ValueError, KeyError, TypeError):
                return 0.0

        return await asyncio.to_thread(read)

    async def set(self, session_id: str | None, total: float) -> None:
        path = self._path(session_id) if session_id else None
        if path is None:
            return

        def write() -> None:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_text(json.dumps({"total_cost_usd": total}))
            tmp.replace(path)

        await asyncio.to_thread(write)


def new_pidfile(run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir / f"{uuid.uuid4().hex}.pid"

