"""The environment the Claude Code CLI (and every shell it runs) gets: an allowlist, not the service's.

The SDK builds the CLI's environment as `{**os.environ, **options.env}`: it can add or overwrite a
variable but never remove one, and blanking (`GH_TOKEN=""`) still shows the name and relies on every
tool treating empty as unset. So the launcher (`launcher.py`) removes, before it execs the CLI, every
inherited variable that is not on the allowlist below - GH_TOKEN, the webhook and Jira secrets,
OPERATOR_TOKEN, LANGFUSE_*, DATABASE_URL and anything else the service happens to carry never reach
the agent. The deny patterns win over the allowlist (e.g. `ANTHROPIC_AUTH_TOKEN` is dropped: the key
the agent uses comes from Settings).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from app.config import Settings

# Inherited variables the CLI and the commands it runs (pnpm, pytest, git read-only) may see.
ALLOWED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "TZ", "TMPDIR", "PWD",
    "API_TIMEOUT_MS", "IS_SANDBOX", "MAX_THINKING_TOKENS", "MAX_MCP_OUTPUT_TOKENS",
    "BASH_DEFAULT_TIMEOUT_MS", "BASH_MAX_TIMEOUT_MS", "BASH_MAX_OUTPUT_LENGTH",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "CI", "TMP", "TEMP", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME",
    "PNPM_HOME", "COREPACK_HOME", "NVM_DIR", "PYENV_ROOT", "PYENV_VERSION", "VIRTUAL_ENV",
})
ALLOWED_PREFIXES = ("LC_", "CLAUDE_CODE_", "CLAUDE_AGENT_SDK_", "ANTHROPIC_", "DISABLE_")
# Never passed on, whatever the allowlist says: credentials by name, and the service's own config.
_DENY = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|API_KEY|^LANGFUSE_|^DATABASE_URL$|^GH_|^GITHUB_"
    r"|^JIRA_|^WEBHOOK_|^OPERATOR_|^AWS_|^AUTO_CODE_",
    re.IGNORECASE,
)


def is_passed_through(name: str) -> bool:
    """Whether an inherited variable may reach the CLI."""
    if _DENY.search(name):
        return False
    return name in ALLOWED_NAMES or name.startswith(ALLOWED_PREFIXES)


def agent_env(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """What we set explicitly for the CLI (goes into `ClaudeAgentOptions.env`)."""
    env = {
        "CLAUDE_CONFIG_DIR": str(settings.claude_config_dir.resolve()),
        # The one switch that stops every call to api.anthropic.com besides the model (telemetry,
        # /api/hello): DISABLE_TELEMETRY alone does not (notes/claude-cli.md).
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        # The CLI's auto-memory lets a session write .md files that later sessions read as
        # instructions, outside the untrusted-data tags: nothing one ticket writes may reach another.
        "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1",
    }
    if settings.anthropic_api_key is not None:
        env["ANTHROPIC_API_KEY"] = settings.anthropic_api_key.get_secret_value()
    if base_url := settings.anthropic_base_url or environ.get("ANTHROPIC_BASE_URL"):
        env["ANTHROPIC_BASE_URL"] = base_url
    return env


def names_to_drop(environ: Mapping[str, str], explicit: Mapping[str, str]) -> list[str]:
    """Inherited names the launcher must delete: not allowed and not set by us on purpose."""
    return sorted(name for name in environ if name not in explicit and not is_passed_through(name))
