"""The sandbox interface: how every process that runs code the ticket can influence is started.

Trust boundary (DESIGN.md, round 2): the service is trusted; the agent's sessions and every command
that runs the worktree's code (setup, lint, test) are not. Those processes start only through a
`Sandbox`. Inside one sandboxed call:
- files: the system is read-only; writable are the run's worktree, a fresh empty HOME and TMPDIR
  (gone when the call returns) and, when given, the run's own CLI state directory. The workspace
  (database, shared clone, transit repositories, other worktrees, other runs' CLI state), the
  service's `.env`, the service user's home and every Unix socket under /run and /tmp are not visible;
- processes: a PID namespace of its own; when the call returns nothing it started is alive;
- network: none, except the `Endpoint`s the caller names (a Unix socket of the service, reached
  from inside through a loopback port: the model proxy for the CLI, the egress proxy for a setup
  that must download);
- limits: address space, process count, file size (rlimits) and the caller's wall-clock timeout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from app.proc import CommandResult

# Inside the sandbox: HOME and TMPDIR live on the call's own tmpfs.
SANDBOX_TMP = "/tmp"  # noqa: S108 - a fresh tmpfs per call, not the host's /tmp
SANDBOX_HOME = "/tmp/home"  # noqa: S108
# Where service sockets appear inside the sandbox (under the call's own tmpfs on /run).
SOCKET_DIR = "/run/auto-code"


@dataclass(frozen=True)
class Endpoint:
    """A service Unix socket made reachable inside the sandbox as `127.0.0.1:<port>`."""

    name: str  # file name inside SOCKET_DIR, e.g. "model"
    socket_path: Path  # the service-side socket
    port: int  # the loopback port inside the sandbox's own network namespace


@dataclass(frozen=True)
class SandboxCall:
    """One sandboxed process: where it works and what it may reach."""

    worktree: Path  # the only writable project directory; also the working directory
    state_dir: Path | None = None  # the run's CLI state (transcripts for `resume`), read-write
    endpoints: tuple[Endpoint, ...] = ()  # empty: no network at all
    env: Mapping[str, str] = field(default_factory=dict)  # the whole environment (nothing inherited)


class Sandbox(Protocol):
    """Starts untrusted processes. One instance per process, shared by every run."""

    name: str  # "bwrap" | "none"

    def wrap(self, argv: Sequence[str], call: SandboxCall) -> tuple[list[str], dict[str, str]]:
        """The argv and environment that run `argv` inside the sandbox described by `call`.

        For callers that spawn the process themselves (the Claude CLI's launcher): the returned
        argv starts the sandbox, which starts `argv` with `call.env` (plus HOME/TMPDIR pointing at
        the call's own tmpfs). Never puts an environment value in the argv. Raises SandboxError
        when the sandbox cannot be built (e.g. the worktree is missing)."""
        ...

    async def run(self, argv: Sequence[str], call: SandboxCall, *, timeout: float,  # noqa: ASYNC109
                  max_output_chars: int) -> CommandResult:
        """Run `argv` inside the sandbox and wait, like `app.proc.run_command`: merged output
        capped at `max_output_chars` keeping the end, killed (with everything it started) on
        timeout or cancellation. Never raises for the command's own failure."""
        ...
