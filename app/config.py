"""Settings: the configuration contract of DESIGN.md, read from the environment and `.env`.

Every name here keeps the meaning DESIGN.md gives it. Secrets are `SecretStr` so they never reach a
log line or a repr. In production (`NODE_ENV=production`) `Settings.check_production()` names every
missing or invalid item in one message, and `create_app` refuses to start until they are fixed.
"""

from __future__ import annotations

import os
import re
import socket
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.config_checks import base_url_problem, production_problems, web_origin
from app.config_parse import csv, json_argv, project_caps
from app.errors import ConfigError

# A repository's own GitHub token (REPOSITORIES_FILE's `token_env`) is a variable of this prefix.
REPOSITORY_TOKEN_PREFIX = "GH_TOKEN_"  # noqa: S105 - a variable name's prefix, not a value
_GITHUB_REPO_RE = re.compile(
    r"^(?:https://github\.com/|git@github\.com:)(?P<slug>[\w.-]+/[\w.-]+?)(?:\.git)?/?$"
)


class Settings(BaseSettings):
    """The service's whole configuration; one instance per process, built before the app."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- service ---
    claude_code_api_port: int = Field(3001, alias="CLAUDE_CODE_API_PORT")
    node_env: Literal["development", "production", "test"] = Field(
        "development", alias="NODE_ENV"
    )
    log_level: str = Field("INFO", alias="LOG_LEVEL")
    workspace_dir: Path = Field(Path("/workspace"), alias="WORKSPACE_DIR")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    max_concurrent_runs: int = Field(2, ge=1, le=64, alias="MAX_CONCURRENT_RUNS")
    # DBOS only recovers runs whose application_version matches the running code: pin it, and bump it
    # only when the workflow's step order changes incompatibly (see deployment-plan.md).
    app_version: str = Field("1", alias="APP_VERSION")
    # Stable per process so recovery after a restart finds this host's runs; defaults to hostname.
    executor_id: str = Field(default_factory=socket.gethostname, alias="EXECUTOR_ID")
    # How often each host's DBOS queue worker looks for runs to start (seconds). A run waits for the
    # next poll after its handoff, so this is most of the accepted -> first step wait (issue 10: goal
    # <= 100 ms); idle, a poll is two or three indexed reads.
    queue_poll_interval_sec: float = Field(0.05, gt=0, alias="QUEUE_POLL_INTERVAL_SEC")
    # False: enqueue only, never take runs from the queue. For one-off processes (`auto-code recover`
    # sets it): they exit right after their work, stranding any run they had started on their id.
    queue_worker: bool = Field(True, alias="QUEUE_WORKER")
    # How often (seconds) every host ends the records of runs DBOS has finished with (a workflow past
    # its recovery limit, one that errored outside the pipeline); 0 = only at start-up.
    reconcile_interval_sec: float = Field(60.0, ge=0, alias="RECONCILE_INTERVAL_SEC")
    # Keep-alive comment on a quiet runs events stream (GET /runs/{id}/events), in seconds.
    sse_ping_sec: float = Field(15.0, gt=0, alias="SSE_PING_SEC")
    # How long a dashboard sign-in lasts (hours; the signed session cookie's expiry). The cookie is
    # signed with a key derived from OPERATOR_TOKEN: rotating the token signs everyone out.
    dashboard_session_hours: float = Field(12.0, gt=0, le=720, alias="DASHBOARD_SESSION_HOURS")
    # Remove secret variables from the process environment once read (no subprocess inherits them).
    scrub_env: bool = Field(True, alias="SCRUB_ENV")

    # --- target repository ---
    repo_url: str | None = Field(None, alias="REPO_URL")
    repo_dir: Path | None = Field(None, alias="REPO_DIR")
    base_branch: str = Field("main", alias="BASE_BRANCH")
    # Several repositories (TOML or YAML; app/repositories/load.py): each with its own URL, GitHub
    # repository, commands, gates, limits and routing rules. Unset: the settings above are the one.
    repositories_file: Path | None = Field(None, alias="REPOSITORIES_FILE")
    git_author_name: str = Field("auto-code", alias="GIT_AUTHOR_NAME")
    git_author_email: str = Field("auto-code@users.noreply.github.com", alias="GIT_AUTHOR_EMAIL")

    # --- Claude ---
    anthropic_api_key: SecretStr | None = Field(None, alias="ANTHROPIC_API_KEY")
    # Where the CLI sends model requests (an LLM gateway, or a local test server); read here so a
    # value in `.env` reaches the CLI too, not only one in the process environment.
    anthropic_base_url: str | None = Field(None, alias="ANTHROPIC_BASE_URL")
    claude_cli_path: str | None = Field(None, alias="CLAUDE_CLI_PATH")
    # "sdk" = the real Claude Code CLI; "mock" = the offline scripted editor. Empty = sdk when an
    # API key is set, else mock (development only: production requires the key).
    claude_client: Literal["", "sdk", "mock"] = Field("", alias="CLAUDE_CLIENT")
    claude_model: str | None = Field(None, alias="CLAUDE_MODEL")
    claude_max_turns: int = Field(50, ge=1, alias="CLAUDE_MAX_TURNS")
    claude_review_max_turns: int = Field(10, ge=1, alias="CLAUDE_REVIEW_MAX_TURNS")
    claude_max_budget_usd: float = Field(5.0, gt=0, alias="CLAUDE_MAX_BUDGET_USD")
    claude_timeout_sec: float = Field(1800.0, gt=0, alias="CLAUDE_TIMEOUT_SEC")

    # --- GitHub ---
    gh_token: SecretStr | None = Field(None, alias="GH_TOKEN")
    github_api_url: str = Field("https://api.github.com", alias="GITHUB_API_URL")
    github_repository: str | None = Field(None, alias="GITHUB_REPOSITORY")
    # "api" = GitHub REST; "local" = PR records kept in WORKSPACE_DIR (demo, no token).
    github_client: Literal["", "api", "local"] = Field("", alias="GITHUB_CLIENT")
    # --- after the PR (issue 11, app/followups/) ---
    # HMAC secret of the GitHub webhook (X-Hub-Signature-256); unset = the route refuses deliveries.
    github_webhook_secret: SecretStr | None = Field(None, alias="GITHUB_WEBHOOK_SECRET")
    # The service's own GitHub login (its comments never steer it); learned from GET /user if unset.
    github_service_login: str | None = Field(None, alias="GITHUB_SERVICE_LOGIN")
    # Who may steer a PR besides collaborators with write access; bots count only when listed here.
    github_steering_users: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                                   alias="GITHUB_STEERING_USERS")
    github_require_mention: bool = Field(False, alias="GITHUB_REQUIRE_MENTION")  # "@<login>" in the text
    followups_enabled: bool = Field(True, alias="FOLLOWUPS_ENABLED")
    followup_ci_max_rounds: int = Field(3, ge=0, alias="FOLLOWUP_CI_MAX_ROUNDS")
    followup_review_max_rounds: int = Field(3, ge=0, alias="FOLLOWUP_REVIEW_MAX_ROUNDS")
    followup_max_cost_usd: float = Field(20.0, ge=0, alias="FOLLOWUP_MAX_COST_USD")  # per PR, all rounds
    github_poll_interval_sec: float = Field(0.0, ge=0, alias="GITHUB_POLL_INTERVAL_SEC")  # 0 = off
    jira_merged_transition: str | None = Field(None, alias="JIRA_MERGED_TRANSITION")

    # --- intake ---
    webhook_secret: SecretStr | None = Field(None, alias="WEBHOOK_SECRET")
    jira_webhook_secret: SecretStr | None = Field(None, alias="JIRA_WEBHOOK_SECRET")
    operator_token: SecretStr | None = Field(None, alias="OPERATOR_TOKEN")
    rate_limit: str = Field("10/minute", alias="RATE_LIMIT")
    # Deliveries that proved a webhook secret: a Jira bulk change (up to 1000 issues) from one
    # address must not meet the abuse limit above (app/intake/rate_limit.py).
    rate_limit_authenticated: str = Field("2000/minute", alias="RATE_LIMIT_AUTHENTICATED")
    # Shared counters for every host (e.g. redis://127.0.0.1:6379/0; may hold a password); unset:
    # per process, in memory.
    rate_limit_storage_url: SecretStr | None = Field(None, alias="RATE_LIMIT_STORAGE_URL")
    max_body_bytes: int = Field(1_048_576, ge=1024, alias="MAX_BODY_BYTES")
    # Peers whose CF-Connecting-IP / X-Forwarded-For we believe (the tunnel, ngrok, a local proxy).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"], alias="TRUSTED_PROXIES"
    )
    trigger_status: str | None = Field(None, alias="TRIGGER_STATUS")
    trigger_label: str | None = Field(None, alias="TRIGGER_LABEL")
    # Project keys allowed to start work; `*` = all (required in production: keys or `*`).
    allowed_projects: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="ALLOWED_PROJECTS"
    )
    # jira:issue_created starts work even without the trigger label/status on the new issue.
    start_on_issue_created: bool = Field(False, alias="START_ON_ISSUE_CREATED")
    # Jira accountIds whose deliveries (actor or issue reporter) may start work; empty = anyone.
    allowed_jira_accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, alias="ALLOWED_JIRA_ACCOUNTS"
    )
    # Ticket description cap (characters) before it reaches the prompt or the database.
    max_description_chars: int = Field(20_000, ge=1000, le=1_000_000, alias="MAX_DESCRIPTION_CHARS")

    # --- pipeline ---
    dry_run: bool = Field(False, alias="DRY_RUN")
    setup_command: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["pnpm", "install", "--frozen-lockfile"], alias="SETUP_COMMAND"
    )
    lint_command: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["pnpm", "lint"], alias="LINT_COMMAND"
    )
    test_command: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["pnpm", "test"], alias="TEST_COMMAND"
    )
    enable_setup: bool = Field(False, alias="ENABLE_SETUP")
    enable_review: bool = Field(False, alias="ENABLE_REVIEW")
    enable_lint: bool = Field(False, alias="ENABLE_LINT")
    enable_tests: bool = Field(False, alias="ENABLE_TESTS")
    gate_max_rounds: int = Field(3, ge=1, le=20, alias="GATE_MAX_ROUNDS")
    check_timeout_sec: float = Field(600.0, gt=0, alias="CHECK_TIMEOUT_SEC")
    check_output_max_chars: int = Field(12_000, ge=500, alias="CHECK_OUTPUT_MAX_CHARS")

    # --- sandbox (everything that runs code the ticket can influence) ---
    # "bwrap": bubblewrap (Linux; the default and the only choice in production). "none": no
    # isolation at all - development only, warned about at start-up and on every run.
    sandbox: Literal["bwrap", "none"] = Field("bwrap", alias="SANDBOX")
    sandbox_bwrap_path: str = Field("bwrap", alias="SANDBOX_BWRAP_PATH")
    # Per sandboxed call (rlimits): address space, processes of the sandbox's user (the kernel does
    # not apply it to uid 0), size of any file written. 0 = no limit.
    sandbox_memory_mb: int = Field(8192, ge=0, alias="SANDBOX_MEMORY_MB")
    sandbox_max_processes: int = Field(1024, ge=0, alias="SANDBOX_MAX_PROCESSES")
    sandbox_max_file_mb: int = Field(1024, ge=0, alias="SANDBOX_MAX_FILE_MB")
    # The service user's home is hidden from the sandbox; toolchains installed there (pyenv, nvm,
    # ...) are shown again read-only when they are on PATH. Extra read-only paths go here.
    sandbox_read_paths: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                               alias="SANDBOX_READ_PATHS")
    # Prove at start-up that the sandbox holds (always in production).
    sandbox_self_check: bool = Field(False, alias="SANDBOX_SELF_CHECK")

    # --- model proxy / egress ---
    # Hosts a sandboxed setup step may download from, through the service's egress proxy
    # (comma-separated): `registry.npmjs.org` exactly, `*.example.com` its subdomains only, an IP
    # literal only when listed as such. Empty = the setup step has no network at all.
    setup_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                                alias="SETUP_ALLOWED_HOSTS")

    # --- Jira (reporting back; optional) ---
    jira_base_url: str | None = Field(None, alias="JIRA_BASE_URL")
    jira_email: str | None = Field(None, alias="JIRA_EMAIL")
    jira_api_token: SecretStr | None = Field(None, alias="JIRA_API_TOKEN")
    jira_account_id: str | None = Field(None, alias="JIRA_ACCOUNT_ID")
    jira_done_transition: str | None = Field(None, alias="JIRA_DONE_TRANSITION")
    # Progress: one comment per run, edited in place as steps finish (app/services/jira/progress.py).
    jira_progress_comments: bool = Field(True, alias="JIRA_PROGRESS_COMMENTS")
    jira_start_transition: str | None = Field(None, alias="JIRA_START_TRANSITION")
    jira_progress_timeout_sec: float = Field(10.0, gt=0, le=120, alias="JIRA_PROGRESS_TIMEOUT_SEC")
    # Where people reach this service: the run page `/ui/runs/<id>` is linked from Jira, and its
    # origin is accepted by the dashboard's same-origin check when a proxy rewrites Host.
    public_base_url: str | None = Field(None, alias="PUBLIC_BASE_URL")

    # --- Spend caps (USD; unset = no cap; app/services/spend/) ---
    spend_cap_daily_usd: float | None = Field(None, gt=0, alias="SPEND_CAP_DAILY_USD")
    spend_cap_monthly_usd: float | None = Field(None, gt=0, alias="SPEND_CAP_MONTHLY_USD")
    # Per project: `PROJ=20,OPS=5` (project key = the ticket key's prefix).
    spend_project_daily_caps_usd: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, alias="SPEND_PROJECT_DAILY_CAPS_USD")
    spend_project_monthly_caps_usd: Annotated[dict[str, float], NoDecode] = Field(
        default_factory=dict, alias="SPEND_PROJECT_MONTHLY_CAPS_USD")
    spend_warn_ratio: float = Field(0.8, gt=0, lt=1, alias="SPEND_WARN_RATIO")
    spend_check_interval_sec: float = Field(60.0, gt=0, alias="SPEND_CHECK_INTERVAL_SEC")

    # --- Langfuse (optional) ---
    langfuse_public_key: SecretStr | None = Field(None, alias="LANGFUSE_PUBLIC_KEY")
    langfuse_secret_key: SecretStr | None = Field(None, alias="LANGFUSE_SECRET_KEY")
    langfuse_base_url: str = Field("https://cloud.langfuse.com", alias="LANGFUSE_BASE_URL")

    @field_validator("setup_command", "lint_command", "test_command", mode="before")
    @classmethod
    def _parse_argv(cls, value: object) -> object:
        return json_argv(value)

    @field_validator("allowed_projects", "trusted_proxies", "sandbox_read_paths", mode="before")
    @classmethod
    def _parse_csv(cls, value: object) -> object:
        return csv(value)

    @field_validator("setup_allowed_hosts", mode="before")
    @classmethod
    def _parse_setup_hosts(cls, value: object) -> object:
        return csv(value)

    @field_validator("allowed_projects")
    @classmethod
    def _upper_projects(cls, value: list[str]) -> list[str]:
        return [p.upper() for p in value]

    @field_validator("spend_project_daily_caps_usd", "spend_project_monthly_caps_usd", mode="before")
    @classmethod
    def _parse_caps(cls, value: object) -> object:
        return project_caps(value)

    @field_validator("allowed_jira_accounts", mode="before")
    @classmethod
    def _parse_accounts(cls, value: object) -> object:
        return csv(value)

    @field_validator("github_steering_users", mode="before")
    @classmethod
    def _parse_steering(cls, value: object) -> object:
        return csv(value)

    @field_validator("public_base_url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        if value is not None and (problem := base_url_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("webhook_secret", "jira_webhook_secret", "operator_token", "github_webhook_secret")
    @classmethod
    def _not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # Set but blank is a mistake (an empty line in .env), never a silent "unset".
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("is set but empty: remove the line to leave it unset, or give it a value")
        return value

    # GH_TOKEN_<NAME> variables as the process environment had them when these settings were read:
    # the lifespan removes every secret from the environment (main.scrub_secret_env) before it loads
    # REPOSITORIES_FILE, whose `token_env` names them (app/repositories/load.py).
    _repository_tokens: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        self._repository_tokens = {name: SecretStr(value) for name, value in os.environ.items()
                                   if name.startswith(REPOSITORY_TOKEN_PREFIX) and value.strip()}

    @property
    def repository_tokens(self) -> dict[str, SecretStr]:
        """The GH_TOKEN_<NAME> values of the environment these settings were read from."""
        return dict(self._repository_tokens)

    # ----- derived values -----
    @property
    def is_production(self) -> bool:
        return self.node_env == "production"

    @cached_property
    def github_repo_slug(self) -> str | None:
        """`owner/name`: GITHUB_REPOSITORY, else derived from a GitHub REPO_URL."""
        if self.github_repository:
            return self.github_repository
        if self.repo_url and (m := _GITHUB_REPO_RE.match(self.repo_url)):
            return m.group("slug")
        return None

    @property
    def repo_source(self) -> str | None:
        """What the shared clone is cloned from: REPO_URL, else the local REPO_DIR."""
        if self.repo_url:
            return self.repo_url
        return str(self.repo_dir) if self.repo_dir else None

    @property
    def system_database_url(self) -> str:
        """DATABASE_URL, else an SQLite file under WORKSPACE_DIR (the embedded default)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.workspace_dir / 'auto-code.sqlite').resolve()}"

    @property
    def claude_config_dir(self) -> Path:
        """Where the CLI keeps transcripts: on the workspace volume so `resume` survives restarts."""
        return self.workspace_dir / "claude-config"

    @property
    def uses_real_claude(self) -> bool:
        if self.claude_client:
            return self.claude_client == "sdk"
        return self.anthropic_api_key is not None

    @property
    def uses_github_api(self) -> bool:
        """Pull requests through GitHub's REST API (else local PR records): GITHUB_CLIENT when set;
        unset, always in production (local records are refused there, and with REPOSITORIES_FILE
        every repository may bring its own token instead of GH_TOKEN), else when GH_TOKEN is set."""
        if self.github_client:
            return self.github_client == "api"
        return self.is_production or self.gh_token is not None

    @property
    def public_origin(self) -> str | None:
        """PUBLIC_BASE_URL's origin (`https://auto-code.example.com`), None when it is unset."""
        return web_origin(self.public_base_url) if self.public_base_url else None

    @property
    def jira_reporting_enabled(self) -> bool:
        return bool(self.jira_base_url and self.jira_email and self.jira_api_token)

    @property
    def langfuse_enabled(self) -> bool:
        return bool(self.langfuse_public_key and self.langfuse_secret_key)

    @property
    def all_projects_allowed(self) -> bool:
        """ALLOWED_PROJECTS is `*`, or empty (development only: production requires it)."""
        return "*" in self.allowed_projects or not self.allowed_projects

    @property
    def webhook_auth_configured(self) -> bool:
        return bool(self.webhook_secret or self.jira_webhook_secret)

    def check_production(self) -> None:
        """Raise ConfigError naming every missing/invalid production item; no-op in development."""
        if not self.is_production:
            return
        if problems := production_problems(self):
            raise ConfigError("invalid production configuration: " + "; ".join(problems))
