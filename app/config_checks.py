"""The production check of Settings: every missing or invalid item named at once.

`Settings.check_production()` raises one ConfigError listing what `production_problems` finds, and
`create_app` refuses to start until it is empty. Also the checks of single values that apply in every
environment (PUBLIC_BASE_URL: `base_url_problem`, refused by Settings' validator) and `web_origin`,
the origin the dashboard's same-origin check compares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import SecretStr

if TYPE_CHECKING:
    from app.config import Settings

MIN_SECRET_LEN = 16
DEFAULT_PORTS = {"http": 80, "https": 443}
# Values a template ships with; refusing them in production stops a copied .env.example going live.
PLACEHOLDER_SECRETS = {"changeme", "change-me", "replace-me", "secret", "xxx", "todo"}


def production_problems(settings: Settings) -> list[str]:
    """Every missing or invalid item of a production configuration (empty: it may start)."""
    problems: list[str] = []
    if settings.repositories_file is not None:
        pass  # the repositories file names them (load_repositories checks it at start-up)
    elif not settings.repo_url:
        problems.append("REPO_URL is required (or REPOSITORIES_FILE)")
    elif is_placeholder(settings.repo_url):
        problems.append("REPO_URL is a placeholder value")
    # GH_TOKEN is the single repository's token. With REPOSITORIES_FILE it is only the fallback of
    # the repositories that name no `token_env`: load_repositories names each one left without a
    # token, so GH_TOKEN is not required here then (a set one must still be real).
    for name, value, required in (("ANTHROPIC_API_KEY", settings.anthropic_api_key, True),
                                  ("GH_TOKEN", settings.gh_token, settings.repositories_file is None)):
        if value is None or not value.get_secret_value().strip():
            if required:
                problems.append(f"{name} is required")
        elif is_placeholder(value.get_secret_value()):
            problems.append(f"{name} is a placeholder value")
    secrets = [s for s in (settings.webhook_secret, settings.jira_webhook_secret) if s is not None]
    if not secrets:
        problems.append("WEBHOOK_SECRET or JIRA_WEBHOOK_SECRET is required")
    for name, value in (
        ("WEBHOOK_SECRET", settings.webhook_secret),
        ("JIRA_WEBHOOK_SECRET", settings.jira_webhook_secret),
        ("GITHUB_WEBHOOK_SECRET", settings.github_webhook_secret),  # optional; when set, a real one
    ):
        if value is not None:
            problems.extend(secret_problems(name, value))
    if settings.operator_token is None:
        problems.append("OPERATOR_TOKEN is required")
    else:
        problems.extend(secret_problems("OPERATOR_TOKEN", settings.operator_token))
    if not settings.allowed_projects:
        problems.append("ALLOWED_PROJECTS is required (project keys, or * for all projects)")
    elif any(is_placeholder(p) for p in settings.allowed_projects):
        problems.append("ALLOWED_PROJECTS is a placeholder value")
    if settings.claude_client == "mock":
        problems.append("CLAUDE_CLIENT=mock is not allowed in production")
    if settings.github_client == "local":
        problems.append("GITHUB_CLIENT=local is not allowed in production")
    if settings.sandbox == "none":
        problems.append("SANDBOX=none is not allowed in production (the agent would run unconfined)")
    return problems


def is_placeholder(raw: str) -> bool:
    """A value copied from a template (.env.example's `replace-...` lines, `your-org/your-repo`)."""
    text = raw.strip().lower()
    return text in PLACEHOLDER_SECRETS or text.startswith("replace-") or "your-org" in text


def secret_problems(name: str, value: SecretStr) -> list[str]:
    raw = value.get_secret_value()
    if len(raw) < MIN_SECRET_LEN:
        return [f"{name} must be at least {MIN_SECRET_LEN} characters"]
    if is_placeholder(raw):
        return [f"{name} is a placeholder value"]
    return []


def base_url_problem(raw: str) -> str | None:
    """What is wrong with a PUBLIC_BASE_URL value (None: it is a usable http(s) URL). The message
    never repeats the value: a pasted URL may carry a password."""
    if not raw.strip():
        return "is set but empty: remove the line to leave it unset, or give it a value"
    if any(c.isspace() or not c.isprintable() for c in raw):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError:
        return "is not a URL with a valid host and port, e.g. https://auto-code.example.com"
    if parts.scheme not in DEFAULT_PORTS:
        return "must be an http(s) URL, e.g. https://auto-code.example.com"
    if not parts.hostname:
        return "names no host, e.g. https://auto-code.example.com"
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    return None


def web_origin(url: str) -> str | None:
    """The origin (RFC 6454) of an http(s) URL as a browser's `Origin` header serialises it:
    `scheme://host[:port]`, the host lower-cased, the scheme's default port left out. None for
    anything else (no host, a bad port, another scheme, user info)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname  # lower-cased, IPv6 without brackets
    if parts.scheme not in DEFAULT_PORTS or not host or parts.username is not None:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS[parts.scheme]:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}"
