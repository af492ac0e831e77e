"""Subprocesses the service's way: argument lists, a timeout, and a process-group kill.

`run_command` is the one door through which git, the checks and any other helper start a program.
Contract:
- argv only (never a shell); the child starts in its own session (`start_new_session=True`), so
  its process group holds it and every descendant that did not leave on purpose;
- stdout and stderr are merged and read incrementally on the event loop (no thread, no deadlock on
  big output); the text kept is capped at `max_output_chars`, keeping the END (failures are
  usually at the end) behind a `[... N chars cut ...]` marker;
- on timeout, or when the awaiting task is cancelled, the whole group gets SIGTERM, a short grace,
  then SIGKILL, and the leader is reaped; on a normal exit, stragglers left in the group are killed
  too, so nothing outlives the command (orphans are reaped by PID 1: run the container with an init);
- a program that cannot be started is a result (exit code 127/126 and a clear message), not an
  exception.

`scrubbed_env` builds the minimal environment every child gets: an allowlist of harmless variables,
so the service's secrets (GH_TOKEN, ANTHROPIC_API_KEY, WEBHOOK_SECRET, DATABASE_URL, ...) never
reach a subprocess unless a caller passes one on purpose in `extra`.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

DEFAULT_MAX_OUTPUT_CHARS = 50_000
KILL_GRACE_S = 2.0  # SIGTERM → SIGKILL
_DRAIN_AFTER_EXIT_S = 2.0  # how long to wait for the pipe's EOF once the leader has exited
_READ_CHUNK = 65_536

# Variables a build tool legitimately needs; everything else stays out (allowlist, not denylist).
ENV_ALLOWLIST = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ",
    "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES",
    "TMPDIR", "TMP", "TEMP",
    "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME",
    "SSL_CERT_FILE", "SSL_CERT_DIR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "PYENV_ROOT", "PYENV_VERSION", "PNPM_HOME", "COREPACK_HOME", "NVM_DIR",
})
# Never copied from the service's environment, even if someone adds them to the allowlist.
SECRET_ENV_NAMES = frozenset({
    "GH_TOKEN", "GITHUB_TOKEN", "ANTHROPIC_API_KEY", "WEBHOOK_SECRET", "JIRA_WEBHOOK_SECRET",
    "JIRA_API_TOKEN", "OPERATOR_TOKEN", "DATABASE_URL", "RATE_LIMIT_STORAGE_URL",
})
SECRET_ENV_PREFIXES = ("LANGFUSE_", "GH_TOKEN_")  # GH_TOKEN_<NAME>: a repository's own token


@dataclass(frozen=True)
class CommandResult:
    """What a command did. `exit_code` is None when it was killed by the timeout; a negative
    number means it died of that signal; 127/126 mean it could not be started."""

    argv: tuple[str, ...]
    exit_code: int | None
    output: str
    duration_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def is_secret_env_name(name: str) -> bool:
    return name.upper() in SECRET_ENV_NAMES or name.upper().startswith(SECRET_ENV_PREFIXES)


def scrubbed_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allowlisted part of `os.environ` (never a service secret), then `extra` on top.

    `extra` is the caller's explicit choice and is applied as given (e.g. the Claude client passes
    ANTHROPIC_API_KEY to the CLI on purpose, git's push gets its token variable)."""
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOWLIST and not is_secret_env_name(k)}
    env.setdefault("PATH", os.defpath)
    if extra:
        env.update(extra)
    return env


class _TailBuffer:
    """Decodes bytes as they come and keeps only the last `limit` characters, counting the cut."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 0)
        self.cut = 0
        self._text = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes, final: bool = False) -> None:
        self._text += self._decoder.decode(data, final)
        # Trim only when well over the limit, so a flood of small chunks stays linear.
        if len(self._text) > 2 * self.limit + _READ_CHUNK or final:
            self._trim()

    def _trim(self) -> None:
        excess = len(self._text) - self.limit
        if excess > 0:
            self.cut += excess
            self._text = self._text[excess:]

    def text(self) -> str:
        self._trim()
        if self.cut:
            return f"[... {self.cut} chars cut ...]\n{self._text}"
        return self._text


class _Collector(asyncio.SubprocessProtocol):
    """Feeds output into the tail buffer and signals the leader's exit separately from the pipes'
    closing (Process.wait() in 3.11 waits for both, so a straggler holding the pipe would hang it)."""

    def __init__(self, buf: _TailBuffer, loop: asyncio.AbstractEventLoop) -> None:
        self.buf = buf
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self.buf.feed(data if isinstance(data, bytes) else data.encode())

    def process_exited(self) -> None:  # called once the child watcher has reaped the leader
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:  # leader reaped and all pipes closed
        if not self.closed.done():
            self.closed.set_result(None)


def _child_options(cwd: Path, env: Mapping[str, str] | None, *, with_stdin: bool) -> dict[str, Any]:
    """How every child starts (async and sync alike): in `cwd`, with `env` (None: `scrubbed_env()`),
    stdin a pipe only when there is input to send, stdout+stderr merged into one pipe, and its own
    session so that its process group can be killed as a whole."""
    return {
        "cwd": str(cwd),
        "env": dict(env) if env is not None else scrubbed_env(),
        "stdin": subprocess.PIPE if with_stdin else subprocess.DEVNULL,
        "stdout": subprocess.PIPE,
        "stderr": subprocess.STDOUT,
        "start_new_session": True,
    }


def _not_started(args: tuple[str, ...], exc: OSError, cwd: Path, started: float) -> CommandResult:
    """The result for a program that could not be started (127: not found, 126: not executable)."""
    missing_cwd = isinstance(exc, FileNotFoundError) and not os.path.isdir(cwd)
    what = f"working directory {cwd} does not exist" if missing_cwd else exc.strerror or str(exc)
    code = 126 if isinstance(exc, PermissionError) else 127
    return CommandResult(args, code, f"cannot run {args[0]!r}: {what}", time.monotonic() - started)


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed identity (setuid); nothing more we may do
        return False
    return True


async def _kill_group(pgid: int, exited: asyncio.Future[None], grace: float) -> None:
    """SIGTERM the group, give the leader `grace` seconds, SIGKILL what is left, wait for the reap."""
    _signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(exited), grace)
    # The leader may be gone while grandchildren ignore SIGTERM: SIGKILL the group regardless.
    _signal_group(pgid, signal.SIGKILL)
    await asyncio.shield(exited)


async def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None,
    timeout: float,  # noqa: ASYNC109 - bounds the child (then killed), not this coroutine
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    stdin: bytes | None = None,
) -> CommandResult:
    """Run `argv` in `cwd` with `env` (None: `scrubbed_env()`), for at most `timeout` seconds.

    Never raises for the command's own failure, a timeout or a missing program; re-raises
    `asyncio.CancelledError` after the process group has been killed and reaped."""
    args = tuple(str(a) for a in argv)
    if not args:
        raise ValueError("run_command needs a non-empty argv")
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    collector = _Collector(_TailBuffer(max_output_chars), loop)
    try:
        transport, _ = await loop.subprocess_exec(
            lambda: collector, *args, **_child_options(cwd, env, with_stdin=stdin is not None)
        )
    except OSError as exc:
        return _not_started(args, exc, cwd, started)

    pgid = transport.get_pid()  # start_new_session: the leader's pid is the group id
    timed_out = False
    try:
        if stdin is not None and (pipe := transport.get_pipe_transport(0)) is not None:
            # fd 0 is the child's stdin, a write pipe; typeshed types every pipe as BaseTransport.
            pipe = cast(asyncio.WriteTransport, pipe)
            pipe.write(stdin)  # buffered by the loop; close() flushes, then sends EOF
            pipe.close()
        try:
            await asyncio.wait_for(asyncio.shield(collector.exited), timeout)
        except TimeoutError:
            timed_out = True
            await _kill_group(pgid, collector.exited, KILL_GRACE_S)
        else:
            # Stragglers (a backgrounded child still holding the pipe) die with the command.
            _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(collector.closed), _DRAIN_AFTER_EXIT_S)
    except asyncio.CancelledError:
        await _kill_group(pgid, collector.exited, KILL_GRACE_S)
        raise
    finally:
        if not collector.exited.done():  # an unexpected error above: never leave the group running
            _signal_group(pgid, signal.SIGKILL)
        transport.close()
    return CommandResult(
        args,
        None if timed_out else transport.get_returncode(),
        collector.buf.text(),
        time.monotonic() - started,
        timed_out=timed_out,
    )


def run_command_sync(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None,
    timeout: float,
    stdin: bytes | None = None,
) -> CommandResult:
    """Blocking twin of `run_command` for synchronous code outside the event loop (CLI set-up,
    test builders). Same rules: argv only, own session, group killed on timeout, output merged
    (uncapped: for short commands)."""
    args = tuple(str(a) for a in argv)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(args, **_child_options(cwd, env, with_stdin=stdin is not None))
    except OSError as exc:
        return _not_started(args, exc, cwd, started)
    try:
        out, _ = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return CommandResult(args, None, out.decode(errors="replace"), time.monotonic() - started, True)
    _signal_group(proc.pid, signal.SIGKILL)
    return CommandResult(args, proc.returncode, out.decode(errors="replace"), time.monotonic() - started)
