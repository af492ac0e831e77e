"""The CLI launcher and the environment allowlist, with real processes (no CLI needed): what the
agent's process sees, its own session, and a tree kill that leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from app.services.claude_code.env import agent_env, is_passed_through, names_to_drop
from app.services.claude_code.launcher import descendants, kill_tree, read_pid, write_launcher

SECRETS = {
    "GH_TOKEN": "ghp_secret_gh",
    "GITHUB_TOKEN": "ghs_secret_gh2",
    "WEBHOOK_SECRET": "whsec_value_1234567",
    "JIRA_WEBHOOK_SECRET": "jira_hmac_value_123",
    "JIRA_API_TOKEN": "jira_token_value",
    "OPERATOR_TOKEN": "operator_value_12345",
    "LANGFUSE_SECRET_KEY": "sk-lf-secret",
    "LANGFUSE_PUBLIC_KEY": "pk-lf-public",
    "DATABASE_URL": "postgresql://u:dbpass@h/db",
    "ANTHROPIC_AUTH_TOKEN": "other-anthropic-cred",
    "SOME_SERVICE_PASSWORD": "pw",
}
KEPT = {
    "PATH": os.environ["PATH"],
    "HOME": "/root",
    "CLAUDE_CODE_MAX_RETRIES": "1",
    "API_TIMEOUT_MS": "3000",
    "IS_SANDBOX": "1",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    "LC_ALL": "C.UTF-8",
}


def fake_cli(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-claude"
    path.write_text(f"#!{sys.executable}\nimport os, sys, json, subprocess, time\n{body}\n")
    path.chmod(0o700)
    return path


def run_launcher(
    tmp_path: Path, cli: Path, environ: dict[str, str], *args: str
) -> subprocess.CompletedProcess:
    launcher = write_launcher(tmp_path / "bin")
    explicit = {"ANTHROPIC_API_KEY": "sk-from-settings"}
    env = {
        **environ,
        **explicit,
        "AUTO_CODE_CLI": str(cli),
        "AUTO_CODE_PIDFILE": str(tmp_path / "cli.pid"),
        "AUTO_CODE_DROP": ",".join(names_to_drop(environ, explicit)),
    }
    return subprocess.run(
        [str(launcher), *args], env=env, capture_output=True, text=True, timeout=20, check=True
    )


class TestAllowlist:
    def test_secrets_are_dropped_and_cli_variables_kept(self) -> None:
        environ = {**SECRETS, **KEPT, "RANDOM_APP_SETTING": "x"}
        dropped = set(names_to_drop(environ, {}))
        assert set(SECRETS) <= dropped
        assert "RANDOM_APP_SETTING" in dropped  # an allowlist: unknown names do not pass
        assert not dropped & set(KEPT)

    def test_deny_beats_allow_prefixes(self) -> None:
        assert not is_passed_through("ANTHROPIC_AUTH_TOKEN")
        assert not is_passed_through("CLAUDE_CODE_OAUTH_TOKEN")
        assert is_passed_through("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC")

    def test_what_we_set_on_purpose_is_not_dropped(self) -> None:
        assert "ANTHROPIC_API_KEY" not in names_to_drop(
            {"ANTHROPIC_API_KEY": "old"}, {"ANTHROPIC_API_KEY": "new"}
        )

    def test_agent_env_from_settings(self, settings_factory) -> None:
        settings = settings_factory(ANTHROPIC_API_KEY="sk-ant-settings")
        env = agent_env(settings, {"ANTHROPIC_BASE_URL": "http://127.0.0.1:1", "GH_TOKEN": "x"})
        assert env["ANTHROPIC_API_KEY"] == "sk-ant-settings"
        assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:1"
        assert env["CLAUDE_CONFIG_DIR"] == str(settings.claude_config_dir.resolve())
        assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
        assert "GH_TOKEN" not in env
        settings.anthropic_api_key = None
        assert "ANTHROPIC_API_KEY" not in agent_env(settings, {})

    def test_base_url_from_dotenv_settings_reaches_the_cli(self, settings_factory) -> None:
        # A value in `.env` lives only in Settings (pydantic-settings does not export it).
        settings = settings_factory(ANTHROPIC_BASE_URL="https://llm-gateway.internal.example")
        assert agent_env(settings, {})["ANTHROPIC_BASE_URL"] == "https://llm-gateway.internal.example"


class TestLauncher:
    def test_cli_sees_only_the_allowlisted_environment(self, tmp_path: Path) -> None:
        cli = fake_cli(tmp_path, "print(json.dumps(dict(os.environ)))")
        seen = json.loads(run_launcher(tmp_path, cli, {**SECRETS, **KEPT}).stdout)
        for name, value in SECRETS.items():
            assert name not in seen
            assert value not in json.dumps(seen)
        assert {k: seen[k] for k in KEPT} == KEPT
        assert seen["ANTHROPIC_API_KEY"] == "sk-from-settings"
        assert not [k for k in seen if k.startswith("AUTO_CODE_")]

    def test_cli_gets_its_arguments_its_own_session_and_a_pidfile(self, tmp_path: Path) -> None:
        cli = fake_cli(
            tmp_path, "print(json.dumps([sys.argv[1:], os.getpid(), os.getsid(0), os.getpgid(0)]))"
        )
        out = run_launcher(tmp_path, cli, dict(KEPT), "--output-format", "stream-json", "--resume=abc")
        argv, pid, sid, pgid = json.loads(out.stdout)
        assert argv == ["--output-format", "stream-json", "--resume=abc"]
        assert sid == pid == pgid  # session and group leader: one killpg reaches the tree
        assert read_pid(tmp_path / "cli.pid") == pid  # exec keeps the pid the launcher wrote


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_kill_tree_reaches_children_that_left_the_group(tmp_path: Path) -> None:
    # A "CLI" with a child in its group and a grandchild that started its own session.
    body = (
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(60)']\n"
        "a = subprocess.Popen(sleeper)\n"
        "b = subprocess.Popen(sleeper, start_new_session=True)\n"
        "print(json.dumps([a.pid, b.pid]), flush=True)\n"
        "time.sleep(60)\n"
    )
    cli = fake_cli(tmp_path, body)
    launcher = write_launcher(tmp_path / "bin")
    env = {**KEPT, "AUTO_CODE_CLI": str(cli), "AUTO_CODE_PIDFILE": str(tmp_path / "cli.pid")}
    proc = subprocess.Popen([str(launcher)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        children = json.loads(proc.stdout.readline())
        pid = read_pid(tmp_path / "cli.pid")
        assert pid == proc.pid
        assert set(children) <= set(descendants(pid))
        kill_tree(pid)
        proc.wait(timeout=5)
        deadline = time.monotonic() + 5
        while any(alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [c for c in children if alive(c)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
