"""`BwrapSandbox`: the real `Sandbox` on Linux, built on bubblewrap (see base.py for the contract).

One `bwrap` per call, with:
- `--unshare-all --unshare-user --cap-drop ALL`: new user, mount, PID, network, IPC, UTS and cgroup
  namespaces and no capability, so even a service running as root gives the sandbox none (no mknod,
  no mount, no ptrace of anything outside);
- `--die-with-parent --new-session`: killing the `bwrap` we started kills the sandbox; no TIOCSTI
  into a terminal;
- `--ro-bind / /` then masks: a fresh tmpfs over /tmp, /run (Unix sockets such as PostgreSQL's
  live there: a network namespace does not stop a socket file), /var/tmp, the whole WORKSPACE_DIR
  (database, shared clone, transit repositories, other worktrees, other runs' CLI state) and the
  service user's HOME; `/dev/null` over the service's `.env`; a fresh /dev and /proc (only the
  sandbox's own processes are visible);
- read-only again: the interpreter prefixes, the CLI and PATH entries that live under the hidden
  HOME, and `SANDBOX_READ_PATHS`; read-write again: the worktree and the run's CLI state directory;
- endpoints: each service socket bound to `/run/auto-code/<name>.sock` and bridged to a loopback
  port by `relay.py`, which then starts the command;
- `prlimit` (util-linux) inside, before the command: address space, processes, file size, no core
  dumps.
The environment is exactly `call.env` plus HOME/TMPDIR on the call's tmpfs; nothing is inherited.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from app.config import Settings
from app.errors import SandboxError
from app.proc import CommandResult, run_command
from app.services.sandbox.base import SANDBOX_HOME, SANDBOX_TMP, SOCKET_DIR, SandboxCall

RELAY = Path(__file__).with_name("relay.py")
_MB = 1024 * 1024


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(path))


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class BwrapSandbox:
    """See `base.Sandbox`. Stateless per call; the mask list is computed once at construction."""

    name = "bwrap"

    def __init__(self, settings: Settings, *, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self._bwrap = shutil.which(settings.sandbox_bwrap_path)
        self._prlimit = shutil.which("prlimit")
        if self._bwrap is None:
            raise SandboxError(f"bubblewrap ({settings.sandbox_bwrap_path!r}) is not installed: install the "
                               "Debian package 'bubblewrap', or set SANDBOX=none (development only)")
        if self._prlimit is None:
            raise SandboxError("prlimit (util-linux) is not installed; the sandbox needs it for its limits")
        self._python = sys.executable
        limits = (("as", settings.sandbox_memory_mb * _MB), ("nproc", settings.sandbox_max_processes),
                  ("fsize", settings.sandbox_max_file_mb * _MB))
        self._limits = [f"--{name}={value}" for name, value in limits if value] + ["--core=0"]
        self._masks = self._mask_args(settings, env)

    # ----- what the sandbox does not see -----
    def _mask_args(self, settings: Settings, environ: dict[str, str]) -> list[str]:
        hidden: list[Path] = [Path("/tmp"), Path("/run"), _real(settings.workspace_dir)]  # noqa: S108
        for extra in ("/var/tmp", "/var/run"):  # noqa: S108 - /var/run is usually a symlink to /run
            if os.path.isdir(extra) and not os.path.islink(extra):
                hidden.append(Path(extra))
        home = environ.get("HOME")
        home_dir = _real(home) if home and os.path.isdir(home) else None
        if home_dir is not None and home_dir != Path("/"):
            hidden.append(home_dir)
        args: list[str] = []
        for path in sorted(set(hidden), key=lambda p: len(p.parts)):  # parents before children
            args += ["--tmpfs", str(path)]
        # Shown again read-only: what the processes need to start that lives under a hidden place.
        # The relay runs inside: its folder too (a checkout under /tmp or HOME would hide it).
        again = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), _real(sys.executable).parent,
                 RELAY.parent]
        again += [Path(p) for p in environ.get("PATH", "").split(os.pathsep) if p]
        again += [Path(p) for p in settings.sandbox_read_paths]
        if settings.claude_cli_path:
            again.append(Path(settings.claude_cli_path).parent)
        workspace = _real(settings.workspace_dir)
        shown: list[Path] = []
        for path in sorted({_real(raw) for raw in again}, key=lambda p: len(p.parts)):
            if not path.exists() or _under(path, workspace):
                continue  # nothing of the workspace comes back read-only: only the worktree, read-write
            if any(_under(path, h) for h in hidden) and not any(_under(path, s) for s in shown):
                shown.append(path)
        for path in shown:
            args += ["--ro-bind", str(path), str(path)]
        # The service's own configuration file (pydantic-settings reads `.env` from its cwd).
        for env_file in _env_files(settings):
            args += ["--ro-bind", os.devnull, str(env_file)]
        return args

    # ----- the interface -----
    def wrap(self, argv: Sequence[str], call: SandboxCall) -> tuple[list[str], dict[str, str]]:
        worktree = _real(call.worktree)
        if not worktree.is_dir():
            raise SandboxError(f"worktree {call.worktree} does not exist")
        args = [self._bwrap or "bwrap", "--unshare-all", "--unshare-user", "--cap-drop", "ALL",
                "--die-with-parent", "--new-session", "--ro-bind", "/", "/", "--dev", "/dev",
                "--proc", "/proc", *self._masks]
        args += ["--bind", str(worktree), str(worktree)]
        if call.state_dir is not None:
            state = _real(call.state_dir)
            state.mkdir(parents=True, exist_ok=True)
            args += ["--bind", str(state), str(state)]
        args += ["--dir", SANDBOX_HOME, "--dir", SOCKET_DIR]
        relay: list[str] = []
        for ep in call.endpoints:
            inside = f"{SOCKET_DIR}/{ep.name}.sock"
            args += ["--bind", str(ep.socket_path), inside]
            relay.append(f"{ep.port}={inside}")
        args += ["--chdir", str(worktree), "--"]
        args += [self._prlimit or "prlimit", *self._limits, "--"]
        if relay:
            args += [self._python, "-I", "-S", str(RELAY), *relay, "--"]
        env = {**call.env, "HOME": SANDBOX_HOME, "TMPDIR": SANDBOX_TMP}
        env.setdefault("PATH", os.environ.get("PATH", os.defpath))
        return [*args, *argv], env

    async def run(self, argv: Sequence[str], call: SandboxCall, *, timeout: float,  # noqa: ASYNC109
                  max_output_chars: int) -> CommandResult:
        full, env = self.wrap(argv, call)
        res = await run_command(full, cwd=call.worktree, env=env, timeout=timeout,
                                max_output_chars=max_output_chars)
        # Report the command the caller asked for, not the sandbox's own argv.
        return CommandResult(tuple(str(a) for a in argv), res.exit_code, res.output, res.duration_s,
                             timed_out=res.timed_out)


def _env_files(settings: Settings) -> Iterable[Path]:
    """`.env` in the service's cwd (what `Settings` reads by default) and any configured env file."""
    configured = settings.model_config.get("env_file")
    names = [configured] if isinstance(configured, (str, os.PathLike)) else list(configured or ())
    seen: set[Path] = set()
    for name in [".env", *names]:
        path = Path(name)
        if not path.is_absolute():
            path = Path.cwd() / path
        if path.is_file() and _real(path) not in seen:
            seen.add(_real(path))
            yield _real(path)
