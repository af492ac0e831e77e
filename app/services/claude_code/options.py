"""What each Claude Code call is allowed and given: the `ClaudeAgentOptions` of a session.

The tool sets and allow/deny rules of implement/fix and of review, the call's model budget, and
the environment the launcher hands the CLI (inside the sandbox: a capability token, the model
proxy's loopback port, the run's own CLI state, a fresh HOME and TMPDIR). `SdkClaudeCode`
(client.py) builds one per session; why each rule is what it is, is said next to it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions

from app.config import Settings
from app.services.claude_code.base import AgentRequest
from app.services.claude_code.env import agent_env, names_to_drop
from app.services.model_proxy import ModelProxy
from app.services.sandbox import SANDBOX_HOME, SANDBOX_TMP, Endpoint, Sandbox, SandboxCall
from app.services.workspace.gitenv import sandbox_git_env

EDIT_TOOLS = ["Read", "Write", "Edit", "Glob", "Grep", "Bash"]
REVIEW_TOOLS = ["Read", "Glob", "Grep"]
REVIEW_DENIED = ["Write", "Edit", "MultiEdit", "NotebookEdit", "Bash", "WebFetch", "WebSearch", "Task"]
# No bare "Read"/"Write"/"Edit" allow rules: a bare tool name allows it on ANY path. Without them the
# CLI's own rules apply - edits (acceptEdits) and reads inside the cwd (the worktree) only.
# Bash the agent may run without asking: listing and `git status`. Not `git diff/log/show`: they take
# `--output=<file>`, which can overwrite the worktree's `.git` pointer. The enabled checks are added.
# Not `git status` either: inside the sandbox the shared clone is not visible, and git in a directory
# the agent wrote is how an implicit bare repository's `core.fsmonitor` ran (the service computes
# diffs itself).
SAFE_BASH = ["Bash(ls:*)", "Bash(pwd)"]
DENIED = ["Bash(git push:*)", "Bash(git remote:*)", "Bash(git config:*)", "Bash(curl:*)", "Bash(wget:*)",
          "Bash(ssh:*)", "Bash(scp:*)", "Bash(nc:*)", "WebFetch", "WebSearch"]
_RULE_WORD = re.compile(r"^[\w./@=+-]+$")  # what may go into a `Bash(...)` rule unquoted
STREAM_BUFFER_BYTES = 16 * 1024 * 1024  # a Read of a big file is one stdout line (SDK default 1 MB, #98)
MODEL_PORT = 8790  # the model proxy's loopback port inside the sandbox's own network namespace
_RUN_DIR_RE = re.compile(r"[^A-Za-z0-9_.-]")


def run_state_dir(config_dir: Path, run_id: str) -> Path:
    """The run's own CLI state (transcripts `resume` needs): never shared with another run."""
    return config_dir / "runs" / (_RUN_DIR_RE.sub("_", run_id) or "_")


def command_rule(argv: Sequence[str]) -> str | None:
    """`["pnpm", "lint"]` -> `Bash(pnpm lint:*)`; None if a word would break the rule syntax."""
    if argv and all(_RULE_WORD.match(word) for word in argv):
        return f"Bash({' '.join(argv)}:*)"
    return None


class SessionOptions:
    """Builds the options of every call of one `SdkClaudeCode`. `proxy` None: no sandbox."""

    def __init__(self, settings: Settings, *, launcher: Path, cli: str, sandbox: Sandbox,
                 proxy: ModelProxy | None, extra_allowed_tools: Sequence[str] = ()) -> None:
        self._settings = settings
        self._config_dir = settings.claude_config_dir
        self._launcher = launcher
        self._cli = cli
        self._sandbox = sandbox
        self._proxy = proxy
        # Only the checks the pipeline will run: a disabled gate's command is no reason to let the
        # agent execute (possibly agent-edited) code.
        commands = [cmd for cmd, on in ((settings.setup_command, settings.enable_setup),
                                        (settings.lint_command, settings.enable_lint),
                                        (settings.test_command, settings.enable_tests)) if on]
        checks = [command_rule(c) for c in commands]
        self._check_rules = [r for r in checks if r]
        self._allowed = [*SAFE_BASH, *self._check_rules, *extra_allowed_tools]

    def shape(self, req: AgentRequest | None) -> tuple[list[str], float]:
        """The allow rules and the model budget of a call: its request's (the run's repository's
        commands and budget), else the settings' (a warm-up, before the request exists)."""
        if req is None:
            return self._allowed, self._settings.claude_max_budget_usd
        rules = [r for r in (command_rule(list(c)) for c in req.allowed_commands) if r]
        extra = self._allowed[len(SAFE_BASH) + len(self._check_rules):]
        return [*SAFE_BASH, *rules, *extra], req.budget_usd or self._settings.claude_max_budget_usd

    def build(self, cwd: Path, run_id: str, *, review: bool, resume: str | None = None,
              token: str | None = None, req: AgentRequest | None = None) -> ClaudeAgentOptions:
        s = self._settings
        allowed, budget = self.shape(req)
        explicit = agent_env(s, os.environ)
        if self._proxy is not None and token is not None:
            explicit.update(self._sandbox_env(cwd, run_id, token, explicit))
        env = {**explicit, "AUTO_CODE_CLI": self._cli,
               "AUTO_CODE_DROP": ",".join(names_to_drop(os.environ, explicit))}
        if self._proxy is not None and token is not None:
            call = SandboxCall(worktree=cwd, state_dir=Path(explicit["CLAUDE_CONFIG_DIR"]),
                               endpoints=(Endpoint("model", self._proxy.socket_path, MODEL_PORT),), env={})
            prefix, _ = self._sandbox.wrap([], call)
            env["AUTO_CODE_SANDBOX"] = json.dumps(prefix)
        common: dict[str, Any] = dict(
            cwd=str(cwd), cli_path=str(self._launcher), env=env, setting_sources=[], resume=resume,
            model=s.claude_model or None, system_prompt={"type": "preset", "preset": "claude_code"},
            max_buffer_size=STREAM_BUFFER_BYTES, max_budget_usd=budget,
        )
        if review:
            return ClaudeAgentOptions(**common, permission_mode="default", tools=list(REVIEW_TOOLS),
                                      allowed_tools=[], disallowed_tools=list(REVIEW_DENIED),
                                      max_turns=s.claude_review_max_turns)
        return ClaudeAgentOptions(**common, permission_mode="acceptEdits", tools=list(EDIT_TOOLS),
                                  allowed_tools=list(allowed), disallowed_tools=list(DENIED),
                                  max_turns=s.claude_max_turns)

    def _sandbox_env(self, cwd: Path, run_id: str, token: str, explicit: dict[str, str]) -> dict[str, str]:
        """What the CLI sees inside the sandbox instead of the service's own values."""
        state = run_state_dir(self._config_dir, run_id).resolve()
        return {
            "ANTHROPIC_API_KEY": token,  # a capability for this call, not the key
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{MODEL_PORT}",
            "CLAUDE_CONFIG_DIR": str(state),
            # On the call's own tmpfs (the launcher passes the SDK's environment through, so these
            # must be set here, not left to the sandbox's defaults).
            "HOME": SANDBOX_HOME, "TMPDIR": SANDBOX_TMP,
            **sandbox_git_env(),
        }
