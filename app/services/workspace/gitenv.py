"""The environment every git call of the workspace runs with, and how the token reaches git.

Token handling (the only place GH_TOKEN meets git): for an https remote the token is put in ONE
environment variable, `AUTO_CODE_GIT_TOKEN`, of the network commands only (clone, fetch, push), and
git is given, through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` (command-scope
config that lives in the environment, never in a file), a credential helper that prints
`username=x-access-token` and `password=$AUTO_CODE_GIT_TOKEN`. The helper text names the variable,
not its value, so the token is never in argv, a URL, `.git/config` or a log line. Any helper
configured elsewhere is reset first (an empty `credential.helper` clears the list) so the token is
not handed to a store; `GIT_TERMINAL_PROMPT=0` makes a missing/wrong token fail instead of hang.

Other settings here, and why: `core.hooksPath=/dev/null` — the service's commits and pushes do not
run hooks the target repo or an agent may have planted (they would see the token on push and could
hang); `commit.gpgsign=false` — a host-wide signing config must not prompt; `gc.autoDetach=false` —
an automatic gc runs inside our timeout and lock instead of racing the next command.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from app.proc import scrubbed_env

TOKEN_ENV = "AUTO_CODE_GIT_TOKEN"  # noqa: S105 - the variable's name, not a secret
GIT_USERNAME = "x-access-token"  # what GitHub (and GHE) expect alongside an installation/PAT token
# git runs a helper that starts with "!" through its shell with "get"/"store"/"erase" appended.
CREDENTIAL_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    f'echo "username={GIT_USERNAME}"; echo "password=${{{TOKEN_ENV}}}"; }}; f'
)
_BASE_CONFIG: tuple[tuple[str, str], ...] = (
    ("credential.helper", ""),
    ("core.hooksPath", "/dev/null"),
    ("commit.gpgsign", "false"),
    ("gc.autoDetach", "false"),
    ("advice.detachedHead", "false"),
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


def git_env(*, token: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Scrubbed environment for one git call; with `token`, the credential helper and its variable."""
    config = list(_BASE_CONFIG)
    env: dict[str, str] = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never"}
    if token:
        config.append(("credential.helper", CREDENTIAL_HELPER))
        env[TOKEN_ENV] = token
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    if extra:
        env.update(extra)
    return scrubbed_env(env)


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` replaced (git may echo a URL or header back)."""
    if secret and len(secret) >= 4:
        return text.replace(secret, "***")
    return text
