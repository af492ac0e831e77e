"""The environment every git call of the workspace runs with, and how the token reaches git.

Config git may read: the system and global files are switched off (`GIT_CONFIG_NOSYSTEM=1`,
`GIT_CONFIG_GLOBAL=/dev/null`): the agent runs as our uid and can write `~/.gitconfig`. What the
service needs is given as command-scope config through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/
`GIT_CONFIG_VALUE_n` (it lives in the environment, never in a file, and wins over repo config):
`core.hooksPath=/dev/null` (no hook an agent planted runs), `core.fsmonitor=false` (a repo-config
fsmonitor would be run by status/add/commit), `core.alternateRefsCommand=true` (a repo with
alternates would otherwise start `git for-each-ref` in the alternate, outside our config, with our
environment), `commit.gpgsign=false` (must not prompt), `gc.autoDetach=false` (an automatic gc runs
inside our timeout and lock), `protocol.ext.allow=never`. Which repository a call means is set by
the caller (gitrun.py: explicit `GIT_DIR`/`GIT_COMMON_DIR`/`GIT_WORK_TREE`).

The worktree is hostile, so nothing in it may choose a program for our git to run:
- attribute drivers (`filter=`, `diff=`, `merge=` in a `.gitattributes`) only name a driver; the
  program comes from config. System and global config are off, command-scope config is ours, and
  the one file left, the shared clone's `.git/config`, is rewritten by the service (clonestate.py:
  at every prepare and before every worktree git call), so a `.gitattributes` can only name a
  driver that does not exist. Attribute files outside the tree are off too: `GIT_ATTR_NOSYSTEM=1`,
  `core.attributesFile=/dev/null`, and clonestate.py deletes `info/attributes`;
- diff calls pass `--no-ext-diff --no-textconv` (an empty `diff.external` would be run as a
  command whose output is nothing: worse than leaving it unset);
- `safe.bareRepository=explicit`: git only uses a bare repository named by `GIT_DIR` (ours all
  are), never one it discovers, such as `sub/HEAD`+`sub/config` written by the agent;
- `core.pager=cat`, `core.editor=false`, `sequence.editor=false`: nothing opens a program, and a
  call that would wait for an editor fails instead;
- submodules are never entered: `submodule.recurse=false`, `fetch.recurseSubmodules=false`,
  `diff.ignoreSubmodules=all`, `status.submoduleSummary=false` (a nested repo's status would run
  git in a directory the agent made, under its config).
Includes (`include.path`) cannot be switched off by config, which is why the only repo config git
reads is one the service wrote.

`sandbox_git_env()` is the same idea for git that runs INSIDE the agent's sandbox (its Bash tool,
the checks): it cannot stop the agent from writing a config, but it stops git from running one
that the agent placed where git would discover it.

Token handling (the only place GH_TOKEN meets git): with `token` and `url`, the token is put in ONE
environment variable, `AUTO_CODE_GIT_TOKEN`, next to the configured scheme and host, and git gets
a credential helper scoped to that URL (`credential.<scheme>://<host>.helper`) which, in addition,
reads what git asks for and answers only when `protocol=` and `host=` are exactly the configured
ones; for any other host (an `insteadOf` rewrite, a redirect, a proxy) it prints nothing. The helper
text names the variables, not their values, so the token is never in argv, a URL, a config file or
a log line. Every other helper is reset first (an empty `credential.helper` clears the list, URL-
scoped ones included) so the token is not handed to a store. Token-bearing calls may only use the
configured scheme (`protocol.allow=never` otherwise). `GIT_TERMINAL_PROMPT=0` makes a missing or
wrong token fail instead of hang. Callers give the token only to git processes that run in a
repository the service has just created (see transit.py): that is what keeps repo config the agent
wrote (`url.*.insteadOf`, `http.proxy`, `include.path`, ...) away from the token.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from app.proc import scrubbed_env

TOKEN_ENV = "AUTO_CODE_GIT_TOKEN"  # noqa: S105 - the variable's name, not a secret
HOST_ENV = "AUTO_CODE_GIT_HOST"
PROTOCOL_ENV = "AUTO_CODE_GIT_PROTOCOL"
GIT_USERNAME = "x-access-token"  # what GitHub (and GHE) expect alongside an installation/PAT token
# git runs a helper that starts with "!" through its shell with "get"/"store"/"erase" appended and
# the request (`protocol=…`, `host=…`, … one per line) on stdin. Quoted `case` patterns match
# literally, so a host can never be a glob.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; h=; p=; '
    'while IFS= read -r l && test -n "$l"; do case "$l" in '
    f'"host=${{{HOST_ENV}}}") h=1 ;; "protocol=${{{PROTOCOL_ENV}}}") p=1 ;; esac; done; '
    'test "$h$p" = 11 || exit 0; '
    f'echo "username={GIT_USERNAME}"; echo "password=${{{TOKEN_ENV}}}"; }}; f'
)
_BASE_CONFIG: tuple[tuple[str, str], ...] = (
    ("credential.helper", ""),
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.alternateRefsCommand", "true"),
    ("commit.gpgsign", "false"),
    ("gc.autoDetach", "false"),
    ("protocol.ext.allow", "never"),
    ("advice.detachedHead", "false"),
    ("core.attributesFile", os.devnull),  # no per-user attributes file (the agent can write ~)
    ("safe.bareRepository", "explicit"),  # only repos named by GIT_DIR; read from protected config only
    ("core.pager", "cat"),
    ("core.editor", "false"),
    ("sequence.editor", "false"),
    ("submodule.recurse", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("diff.ignoreSubmodules", "all"),
    ("status.submoduleSummary", "false"),
)
# For git the agent (or a check) runs inside its sandbox; see `sandbox_git_env`.
_SANDBOX_CONFIG: tuple[tuple[str, str], ...] = (
    ("safe.bareRepository", "explicit"),  # `sub/HEAD`+`sub/config` is not a repository git may use
    ("core.fsmonitor", "false"),  # a config the agent wrote (e.g. behind a `.git` gitfile) must not run one
    ("core.hooksPath", os.devnull),
    ("protocol.allow", "never"),  # no transport at all: the sandbox's git has nothing to fetch or push
)


def is_http_remote(source: str) -> bool:
    return source.startswith(("https://", "http://"))


def token_allowed(source: str) -> bool:
    """The token goes to https remotes, and to plain http only on loopback (local test servers)."""
    parts = urlsplit(source)
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}


def url_has_password(source: str) -> bool:
    return is_http_remote(source) and urlsplit(source).password is not None


def credential_target(url: str) -> tuple[str, str]:
    """(protocol, host) as git states them to a credential helper: the host keeps an explicit port."""
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.rpartition("@")[2]


def git_env(
    *, token: str | None = None, url: str | None = None, extra: dict[str, str] | None = None,
    transport: bool = True,
) -> dict[str, str]:
    """Scrubbed environment for one git call; with `token` (which needs the `url` it is for), the
    credential helper scoped to that URL's scheme and host, and its variables. Without
    `transport`, git may speak no transport at all (`protocol.allow=never`): a call in the shared
    clone or a worktree never talks to a remote, and in a partial clone that is what keeps git's
    own lazy fetch of a missing blob (a `git fetch` of the clone's `origin`, which would run in the
    clone, under its config, without the token) from happening: blobs arrive through transit.py."""
    config = list(_BASE_CONFIG)
    if not transport:
        config.append(("protocol.allow", "never"))
    env: dict[str, str] = {
        "GIT_TERMINAL_PROMPT": "0",
        "GCM_INTERACTIVE": "never",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
    }
    if token:
        if not url or not is_http_remote(url):
            raise ValueError("a token needs the http(s) URL it is meant for")
        scheme, host = credential_target(url)
        config += [
            (f"credential.{scheme}://{host}.helper", CREDENTIAL_HELPER),
            ("protocol.allow", "never"),
            (f"protocol.{scheme}.allow", "always"),
        ]
        env.update({TOKEN_ENV: token, HOST_ENV: host, PROTOCOL_ENV: scheme})
    env.update(_config_env(config))
    if extra:
        env.update(extra)
    return scrubbed_env(env)


def sandbox_git_env() -> dict[str, str]:
    """Variables for ANY git that runs inside the agent's sandbox (to merge into that process's
    environment; no PATH, HOME or other variable is included). git 2.39 uses a directory holding
    `HEAD`, `config`, `objects/`, `refs/` as an implicit bare repository and runs the
    `core.fsmonitor` of its config (`cd sub`, then `git --work-tree=.. status`): with these it
    refuses the implicit bare repo, reads no system or global file (the agent can write `~`), runs
    no hook and no fsmonitor whatever config it reads, and speaks no transport."""
    env = {
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_ATTR_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    env.update(_config_env(_SANDBOX_CONFIG))
    return env


def _config_env(config: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Command-scope config as `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n`."""
    env = {"GIT_CONFIG_COUNT": str(len(config))}
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` replaced (git may echo a URL or header back)."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text
