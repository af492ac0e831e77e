"""The shipping files agree with the code: .env.example, Dockerfile, .dockerignore, compose/auto-code.yml.

The image itself is built and run by `.ci/image-smoke` (tests/image/smoke.py, called by .ci/run).
Checked here: every setting of app/config.py and of DESIGN.md's configuration contract is in
.env.example (and the template loads into Settings, refuses to go live unfilled, and passes once
filled); the Dockerfile's, .dockerignore's and the compose file's shape; and `docker compose ...
config` with the template copied to `.env` (skipped, with the reason, when no compose client is
installed).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import REPOSITORY_TOKEN_PREFIX, Settings
from app.errors import ConfigError
from tests.procs import run_captured

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose" / "auto-code.yml"
SECCOMP = ROOT / "compose" / "seccomp-sandbox.json"
APPARMOR = ROOT / "compose" / "apparmor-auto-code-sandbox"
# sha256 of the canonical JSON (sort_keys, no whitespace) of Docker's default seccomp profile:
# moby/profiles seccomp v0.2.3 = vendor/github.com/moby/profiles/seccomp/default.json of moby/moby tag
# docker-v29.7.2 (commit 6a43e3d5afddf4111da0f864bbc7cae5d7e95001). compose/README.md has the story.
DOCKER_DEFAULT_SECCOMP_SHA256 = "9da637d2ab0a204fcbd91bd88f1be9e004a3acab61c571a9f5b8870e588a17d2"
# What bubblewrap needs beyond it (each one shown necessary, compose/README.md).
SANDBOX_SECCOMP_ADDITIONS = [["clone"], ["unshare"], ["mount", "umount2", "pivot_root"]]
# The app container's security options, each explained in compose/auto-code.yml.
APP_SECURITY_OPT = ["no-new-privileges:true", "seccomp=seccomp-sandbox.json",
                    "apparmor=auto-code-sandbox", "systempaths=unconfined"]
# CI clones the repository with shared/ beside it.
DESIGN = ROOT.parent / "shared" / "DESIGN.md"

_ASSIGN = re.compile(r"^(?P<commented>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
# Compose-only names in .env.example (not Settings fields): read by compose interpolation or the CLI.
# TUNNEL_TOKEN is not among them: it lives in .env.tunnel, which only cloudflared receives.
COMPOSE_NAMES = {"POSTGRES_PASSWORD", "POSTGRES_BIND_ADDR", "AUTO_CODE_IMAGE", "HOST"}
PYPROJECT = ROOT / "pyproject.toml"


# ----- helpers -------------------------------------------------------------------------------------
def settings_aliases() -> set[str]:
    """Every `alias="X"` in app/config.py, read from the source (what an operator can set)."""
    source = (ROOT / "app" / "config.py").read_text(encoding="utf-8")
    found = set(re.findall(r'alias="([A-Z][A-Z0-9_]*)"', source))
    assert len(found) > 30, "the alias scan found suspiciously few settings"
    return found


def example_lines() -> list[str]:
    return ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()


def example_assignments() -> dict[str, tuple[bool, str, int]]:
    """name -> (active, value, line index) for every `NAME=` / `# NAME=` line of .env.example."""
    out: dict[str, tuple[bool, str, int]] = {}
    for i, line in enumerate(example_lines()):
        m = _ASSIGN.match(line)
        if m and m["name"] not in out:
            out[m["name"]] = (m["commented"] is None, m["value"], i)
    return out


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings must see only the file under test, not this process's environment."""
    for name in settings_aliases():
        for variant in (name, name.lower()):
            monkeypatch.delenv(variant, raising=False)


def load_settings(env_file: Path) -> Settings:
    return Settings(_env_file=env_file)  # type: ignore[call-arg]


def run_cmd(argv: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_captured(argv, cwd=cwd, timeout=timeout)


# The stack needs Compose >= 2.20.2: healthcheck `start_interval` (older clients reject the key); since
# 2.15 it also sends `systempaths=unconfined` as masked/read-only paths (older versions pass it to the
# engine, which rejects it) and reads the seccomp profile relative to the compose file's folder
# (Compose v1 reads it relative to the working directory).
MIN_COMPOSE = (2, 20, 2)


def compose_client() -> tuple[list[str] | None, str]:
    """`docker compose` (v2 plugin) if it answers, else a standalone `docker-compose`; >= MIN_COMPOSE."""
    reasons = []
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    else:
        reasons.append("no `docker` binary")
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    else:
        reasons.append("no `docker-compose` binary")
    for argv in candidates:
        try:
            probe = run_cmd([*argv, "version", "--short"], cwd=ROOT, timeout=30)
        except subprocess.TimeoutExpired:
            probe = None
        if probe is None or probe.returncode != 0:
            reasons.append(f"`{' '.join(argv)}` does not run")
            continue
        version = probe.stdout.strip().lstrip("v")
        parts = tuple(int(x) for x in re.findall(r"\d+", version)[:3])
        if parts < MIN_COMPOSE:
            reasons.append(f"`{' '.join(argv)}` is {version}, the stack needs >= 2.20.2")
            continue
        return argv, version
    return None, "; ".join(reasons) + " (Docker's docker-compose-plugin provides a client)"


def compose_services(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["services"]


# ----- .env.example ------------------------------------------------------------------------------
class TestEnvExample:
    def test_every_settings_alias_is_listed_with_a_one_line_comment(self) -> None:
        lines = example_lines()
        assigned = example_assignments()
        missing = sorted(settings_aliases() - assigned.keys())
        assert not missing, f".env.example lacks {missing}"
        uncommented = []
        for name in settings_aliases():
            above = lines[assigned[name][2] - 1].strip()
            if not above.startswith("#") or _ASSIGN.match(above):
                uncommented.append(name)
        assert not uncommented, f"no comment line directly above {sorted(uncommented)}"

    def test_every_design_contract_variable_is_listed(self) -> None:
        if not DESIGN.exists():
            pytest.skip(f"DESIGN.md not found at {DESIGN} (shared/ must sit beside the clone)")
        text = DESIGN.read_text(encoding="utf-8")
        section = text.split("## Configuration contract", 1)[1].split("\n## ", 1)[0]
        contract = set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", section))
        assert {"NODE_ENV", "DATABASE_URL", "WEBHOOK_SECRET"} <= contract, "contract parse broke"
        example = ENV_EXAMPLE.read_text(encoding="utf-8")
        missing = sorted(n for n in contract if not re.search(rf"\b{n}\b", example))
        assert not missing, f".env.example lacks contract variables {missing}"

    def test_names_are_settings_or_known_compose_variables(self) -> None:
        # GH_TOKEN_<NAME>: a repository's own token, named by REPOSITORIES_FILE's token_env.
        tokens = {n for n in example_assignments() if n.startswith(REPOSITORY_TOKEN_PREFIX)}
        assert tokens, "the template shows no GH_TOKEN_<NAME> of its repositories example"
        unknown = (set(example_assignments()) - settings_aliases() - COMPOSE_NAMES - tokens
                   - {"ANTHROPIC_BASE_URL"})
        assert not unknown, f".env.example names that nothing reads: {sorted(unknown)}"

    def test_groups_required_before_optional_and_production_items_are_active(self) -> None:
        lines = example_lines()
        required_line = next(i for i, line in enumerate(lines) if line.startswith("# Required in production"))
        optional_line = next(i for i, line in enumerate(lines) if line.startswith("# Optional"))
        assert required_line < optional_line
        assigned = example_assignments()
        for name in ("NODE_ENV", "REPO_URL", "ANTHROPIC_API_KEY", "GH_TOKEN", "WEBHOOK_SECRET",
                     "OPERATOR_TOKEN", "EXECUTOR_ID", "APP_VERSION"):
            active, _, index = assigned[name]
            assert active and index < optional_line, f"{name} must be set in the required group"
        # Optional lines stay commented: an empty value would be a value (an empty secret fails).
        for name, (active, value, index) in assigned.items():
            if index > optional_line:
                assert not active, f"optional {name} should be commented out"
            if active:
                assert value.strip(), f"{name}= is empty: comment it out instead"

    def test_the_tunnel_token_is_not_in_the_apps_env_file(self) -> None:
        # The app container receives all of .env (env_file); the token goes to .env.tunnel.
        assert "TUNNEL_TOKEN" not in example_assignments()
        assert ".env.tunnel" in ENV_EXAMPLE.read_text(encoding="utf-8")

    def test_template_loads_but_cannot_go_live_unfilled(self, tmp_path: Path, clean_env: None) -> None:
        settings = load_settings(ENV_EXAMPLE)
        assert settings.is_production
        with pytest.raises(ConfigError) as err:
            settings.check_production()
        assert "WEBHOOK_SECRET is a placeholder" in str(err.value)
        assert "OPERATOR_TOKEN is a placeholder" in str(err.value)

    def test_template_with_placeholders_filled_passes_the_production_check(
        self, tmp_path: Path, clean_env: None
    ) -> None:
        values = {n: v for n, (active, v, _) in example_assignments().items() if active}
        filled = {n: ("f" * 40 if v.startswith("replace-") else v) for n, v in values.items()}
        filled["REPO_URL"] = filled["REPO_URL"].replace("your-org/your-repo", "acme/widgets")
        settings = load_settings(write_env(tmp_path / "filled.env", filled))
        settings.check_production()  # raises if the required group is incomplete
        assert settings.executor_id == "auto-code-1"
        assert settings.app_version == "1"

    def test_commented_values_parse_and_shown_defaults_are_the_real_defaults(
        self, tmp_path: Path, clean_env: None
    ) -> None:
        commented = {n: v for n, (active, v, _) in example_assignments().items()
                     if not active and n in settings_aliases()}
        settings = load_settings(write_env(tmp_path / "all.env", commented))  # validation errors raise
        defaults = Settings.model_construct()
        drift = []
        for field_name, field in Settings.model_fields.items():
            if field.alias not in commented:
                continue
            default = getattr(defaults, field_name)
            if default and getattr(settings, field_name) != default:
                drift.append(f"{field.alias}: example {commented[field.alias]!r}, default {default!r}")
        assert not drift, "'defaults shown' drifted from app/config.py: " + "; ".join(drift)

    def test_postgres_database_url_matches_the_compose_profile(self) -> None:
        url = example_assignments()["DATABASE_URL"][1]
        postgres = compose_services(yaml.safe_load(COMPOSE.read_text()))["postgres"]["environment"]
        assert url.startswith(f"postgresql://{postgres['POSTGRES_USER']}:")
        assert url.endswith(f"@postgres:5432/{postgres['POSTGRES_DB']}")


# ----- Dockerfile ----------------------------------------------------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined: list[str] = []
    buffer = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        joined.append(buffer + line)
        buffer = ""
    out = []
    for line in joined:
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    return out


def entrypoint() -> list[str]:
    """The final stage's ENTRYPOINT, exec form."""
    value = [a for ins, a in final_stage() if ins == "ENTRYPOINT"][-1]
    argv = json.loads(value)
    assert isinstance(argv, list), "ENTRYPOINT must use the exec form"
    return argv


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM")
    return instructions[last_from:]


def stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions (FROM included)."""
    out: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for ins, args in dockerfile_instructions():
        if ins == "FROM":
            current = []
            out[args.split()[-1] if " AS " in args.upper() else args] = current
        current.append((ins, args))
    return out


class TestDockerfile:
    def test_dependencies_come_from_the_lock_without_dev_tools(self) -> None:
        runs = [args for ins, args in dockerfile_instructions() if ins == "RUN"]
        syncs = [r for r in runs if "uv sync" in r]
        assert syncs and all("--frozen" in r and "--no-dev" in r for r in syncs)
        assert any("--no-install-project" not in r for r in syncs), "the project itself is never installed"

    def test_dependencies_are_one_layer_that_a_source_change_does_not_touch(self) -> None:
        # deps: only pyproject.toml + uv.lock are copied before `uv sync --no-install-project`.
        deps = stages()["deps"]
        copies = [a for ins, a in deps if ins == "COPY" and not a.startswith("--from")]
        assert copies == ["pyproject.toml uv.lock ./"]
        assert any(ins == "RUN" and "--no-install-project" in a for ins, a in deps)
        # project: FROM deps, the sources, then only the project's own files kept in /overlay.
        project = stages()["project"]
        assert project[0] == ("FROM", "deps AS project")
        assert [a for ins, a in project if ins == "COPY"] == ["README.md ./", "app ./app"]
        install = next(a for ins, a in project if ins == "RUN")
        assert "--no-editable" in install and "RECORD" in install and "/overlay" in install
        # runtime: the dependency layer first, then the small project layer; nothing else of the venv.
        from_stages = [a for ins, a in final_stage() if ins == "COPY" and a.startswith("--from")]
        assert from_stages == ["--from=deps /app/.venv /app/.venv", "--from=project /overlay/ /"]

    def test_plain_dockerfile_without_buildkit_only_features(self) -> None:
        # The classic builder of a Docker CLI without buildx (and podman) must build it.
        text = DOCKERFILE.read_text(encoding="utf-8")
        assert not re.search(r"^#\s*syntax\s*=", text, re.MULTILINE | re.IGNORECASE)
        instructions = dockerfile_instructions()
        assert not [a for ins, a in instructions if ins == "RUN" and "--mount" in a]
        assert not [a for ins, a in instructions if "<<" in a], "heredocs are BuildKit-only"
        assert not [a for ins, a in instructions if ins in {"COPY", "ADD"}
                    and re.search(r"--(link|chmod|chown|parents|exclude)\b", a)]

    def test_multi_stage_with_pinned_bases(self) -> None:
        instructions = dockerfile_instructions()
        args = dict(a.split("=", 1) for ins, a in instructions if ins == "ARG" and "=" in a)
        assert sum(1 for ins, _ in instructions if ins == "FROM") >= 4
        # uv: an exact release (its tags are never rebuilt); python: exact version AND digest.
        assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", args["UV_IMAGE"])
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", args["PYTHON_IMAGE"])
        # Every FROM names one of the pinned ARGs or an earlier stage, never a floating image.
        for ins, a in instructions:
            if ins == "FROM":
                assert a.split()[0] in {"${UV_IMAGE}", "${PYTHON_IMAGE}", *stages()}, a

    def test_build_backend_is_pinned(self) -> None:
        text = PYPROJECT.read_text(encoding="utf-8")
        assert re.search(r'^requires = \["hatchling==\d+\.\d+\.\d+"\]', text, re.MULTILINE)

    def test_service_runs_as_the_non_root_user_with_workspace_volume(self) -> None:
        stage = final_stage()
        useradd = next(a for ins, a in stage if ins == "RUN" and "useradd" in a)
        assert "--uid 10001" in useradd and "--gid 10001" in useradd
        assert "--home-dir /home/autocode" in useradd and "--create-home" in useradd
        assert any(ins == "RUN" and "chown autocode" in a and "/workspace" in a for ins, a in stage)
        assert any(ins == "VOLUME" and "/workspace" in a for ins, a in stage)
        env = " ".join(a for ins, a in stage if ins == "ENV")
        assert "HOME=/home/autocode" in env and "WORKSPACE_DIR=/workspace" in env
        # The entrypoint drops to that uid/gid (tests below); nothing else may start the service as root.
        drop = ["/usr/bin/setpriv", "--reuid=10001", "--regid=10001", "--init-groups", "--no-new-privs", "--"]
        assert entrypoint()[-6:] == drop

    def test_tini_stays_root_so_pid_1_environment_is_not_readable_by_the_service_uid(self) -> None:
        # A USER instruction would start tini as 10001: its /proc/1/environ (all the secrets) would
        # then be readable by the agent, which runs as that uid.
        assert not [a for ins, a in final_stage() if ins == "USER"]
        assert entrypoint()[:2] == ["/usr/bin/tini", "--"]
        runs = " ".join(a for ins, a in final_stage() if ins == "RUN")
        assert re.search(r"apt-get install .*\btini\b.*\butil-linux\b", runs), "setpriv is in util-linux"
        assert "test -x /usr/bin/setpriv" in runs

    def test_entrypoint_really_drops_to_the_given_uid(self) -> None:
        # The exact ENTRYPOINT argv with this machine's `nobody` in place of 10001 (not in /etc/passwd
        # here): tini and setpriv accept it, the command runs as that uid with no_new_privs set (no
        # setuid binary can raise it again, even in a `docker run` without no-new-privileges), the
        # environment passes.
        if os.geteuid() != 0:
            pytest.skip("not root: setpriv cannot change uid")
        argv = [a.replace("10001", "65534") for a in entrypoint()]
        missing = [a for a in argv if a.startswith("/") and not os.access(a, os.X_OK)]
        if missing:
            pytest.skip(f"not installed here: {missing}")
        env = {"PATH": os.defpath, "HOME": "/home/autocode"}
        script = 'echo "$(id -u):$(id -g):$HOME:$(grep NoNewPrivs /proc/self/status | tr -d "\t ")"'
        proc = subprocess.Popen([*argv, "sh", "-c", script], cwd="/", env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        assert proc.returncode == 0, err
        assert out.strip() == "65534:65534:/home/autocode:NoNewPrivs:1"

    def test_bubblewrap_is_installed_in_the_runtime_stage_and_is_not_setuid(self) -> None:
        # The sandbox (every process the ticket can influence runs under bwrap) needs it at run time;
        # a setuid bwrap would be a root-owned program the agent could attack, and is not needed.
        runtime = " ".join(a for ins, a in final_stage() if ins == "RUN")
        assert re.search(r"apt-get install [^&]*\bbubblewrap\b", runtime), "bubblewrap not installed"
        assert "test -x /usr/bin/bwrap" in runtime
        assert "test ! -u /usr/bin/bwrap" in runtime
        assert "chmod u+s" not in runtime and "chmod 4" not in runtime

    def test_healthcheck_command_and_environment(self) -> None:
        stage = dict((ins, a) for ins, a in final_stage() if ins in {"HEALTHCHECK", "CMD", "ENTRYPOINT"})
        assert "/health" in stage["HEALTHCHECK"] and "CLAUDE_CODE_API_PORT" in stage["HEALTHCHECK"]
        assert "curl" not in stage["HEALTHCHECK"]
        # First probe early: a short interval (the classic builder and podman know no --start-interval).
        interval = re.search(r"--interval=(\d+)s", stage["HEALTHCHECK"])
        assert interval and int(interval.group(1)) <= 10
        assert "--start-period=" in stage["HEALTHCHECK"]
        # The same probe as compose's (the image smoke test runs it).
        compose_app = compose_services(yaml.safe_load(COMPOSE.read_text()))["auto-code"]
        compose_test = compose_app["healthcheck"]["test"]
        assert json.loads(stage["HEALTHCHECK"].split(" CMD ", 1)[1]) == compose_test[1:]
        assert stage["CMD"] == '["auto-code", "serve"]'
        assert "tini" in stage["ENTRYPOINT"]
        env = " ".join(a for ins, a in final_stage() if ins == "ENV")
        assert "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1" in env
        assert "NODE_ENV=production" in env

    def test_git_installed_and_no_separate_claude_cli(self) -> None:
        runs = " ".join(a for ins, a in final_stage() if ins == "RUN")
        assert re.search(r"apt-get install .*\bgit\b", runs) and "ca-certificates" in runs
        # The CLI is the one bundled in the claude-agent-sdk wheel: no npm/Node install of a second one.
        assert "npm install" not in runs and "@anthropic-ai/claude-code" not in runs
        assert "nodejs" not in runs

    def test_copied_sources_exist_and_are_not_dockerignored(self) -> None:
        for ins, args in dockerfile_instructions():
            if ins != "COPY" or args.startswith("--from"):
                continue
            *sources, _dest = args.split()
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: no such file in the build context"
                assert not dockerignored(src), f"COPY {src} is excluded by .dockerignore"
                if (ROOT / src).is_dir():
                    assert not dockerignored(f"{src}/cli.py")

    def test_dockerignore_is_an_allowlist_that_keeps_secrets_and_state_out(self) -> None:
        for path in (".env", ".env.tunnel", ".env.production", ".venv/bin/python", ".git/config",
                     "workspace/auto-code.sqlite", ".test-workspaces/x/db.sqlite", "tests/test_shipping.py",
                     "compose/auto-code.yml", "bench/demo_timing.py", "some-new-file.txt",
                     "app/__pycache__/cli.cpython-311.pyc", "app/.env", "app/x.sqlite"):
            assert dockerignored(path), f"{path} would be sent to the builder"
        for path in ("pyproject.toml", "uv.lock", "README.md", "app/cli.py", "app/prompts/x.md"):
            assert not dockerignored(path), path


def dockerignored(path: str) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parent
    directories decides; `!` re-includes."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


# ----- compose/auto-code.yml ------------------------------------------------------------------------
class TestComposeFile:
    @pytest.fixture
    def services(self) -> dict[str, Any]:
        return compose_services(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))

    def test_app_publishes_no_ports_and_keeps_state_on_the_volume(self, services: dict[str, Any]) -> None:
        app = services["auto-code"]
        assert "ports" not in app and "network_mode" not in app
        assert app["build"]["context"] == ".."
        assert app["image"]
        assert "../.env" in app["env_file"]
        assert "workspace:/workspace" in app["volumes"]
        assert app["restart"] == "unless-stopped"
        assert "/health" in " ".join(app["healthcheck"]["test"])

    def test_only_the_capabilities_the_entrypoint_needs_and_no_user_override(
        self, services: dict[str, Any]
    ) -> None:
        app = services["auto-code"]
        assert "no-new-privileges:true" in app["security_opt"]
        assert app["cap_drop"] == ["ALL"]
        assert not app.get("privileged"), "privileged would switch off every restriction at once"
        # setpriv (run by root tini) needs SETUID/SETGID to drop to uid 10001 (without them the
        # container cannot start), and tini needs KILL to forward SIGTERM to that uid (without it tini
        # dies on `stop` and the service is killed undrained; .ci/image-smoke shows both). Nothing more.
        assert sorted(app["cap_add"]) == ["KILL", "SETGID", "SETUID"]
        assert "user" not in app, "`user:` would start tini as the service uid (PID 1 env readable)"

    def test_sandbox_gets_exactly_its_three_relaxations_and_nothing_broader(
        self, services: dict[str, Any]
    ) -> None:
        # bubblewrap needs: a seccomp profile allowing namespaces and mounts, an AppArmor profile
        # allowing mounts, and unmasked /proc (for its fresh procfs). Nothing else changes, and
        # none of them may be the blanket `unconfined` (seccomp) or `unconfined` (AppArmor).
        opts = services["auto-code"]["security_opt"]
        assert sorted(opts) == sorted(APP_SECURITY_OPT)
        assert not [o for o in opts if o.replace(":", "=") in {"seccomp=unconfined", "apparmor=unconfined"}]
        assert "SYS_ADMIN" not in services["auto-code"].get("cap_add", [])
        assert "security_opt" not in services["postgres"]
        assert services["cloudflared"]["security_opt"] == ["no-new-privileges:true"]

    def test_stable_executor_id_and_a_long_stop_grace(self, services: dict[str, Any]) -> None:
        app = services["auto-code"]
        # EXECUTOR_ID defaults to the hostname; a pinned hostname survives container re-creation.
        assert app["hostname"] == "${EXECUTOR_ID:-auto-code-1}"
        assert "EXECUTOR_ID" not in (app.get("environment") or {}), "would override .env's value"
        value, unit = re.fullmatch(r"(\d+)([ms])", app["stop_grace_period"]).groups()
        assert int(value) * (60 if unit == "m" else 1) >= 300

    def test_read_only_root_with_an_exec_tmp_and_resource_limits(self, services: dict[str, Any]) -> None:
        app = services["auto-code"]
        assert app["read_only"] is True
        assert len(app["tmpfs"]) == 1
        target, options = app["tmpfs"][0].split(":", 1)
        assert target == "/tmp"
        assert "exec" in options.split(",") and "noexec" not in options
        assert {"nosuid", "nodev"} <= set(options.split(","))
        assert re.fullmatch(r"\d+[mg]", app["mem_limit"]) and app["memswap_limit"] == app["mem_limit"]
        assert 256 <= app["pids_limit"] <= 8192
        assert 0 < float(app["cpus"]) <= 8

    def test_first_health_probe_comes_early(self, services: dict[str, Any]) -> None:
        # cloudflared starts only once the app is healthy: no 30 s wait on every `up`.
        hc = services["auto-code"]["healthcheck"]
        seconds = {k: int(re.fullmatch(r"(\d+)s", hc[k]).group(1))
                   for k in ("interval", "start_interval", "start_period", "timeout")}
        assert seconds["start_interval"] <= 2 and seconds["interval"] <= 10
        assert seconds["start_period"] >= 30 and seconds["timeout"] < seconds["interval"]

    def test_cloudflared_runs_the_tunnel_after_the_app_is_healthy(self, services: dict[str, Any]) -> None:
        tunnel = services["cloudflared"]
        assert re.fullmatch(r"cloudflare/cloudflared:\d{4}\.\d+\.\d+@sha256:[0-9a-f]{64}", tunnel["image"])
        assert tunnel["command"] == "tunnel --no-autoupdate run"
        assert tunnel["depends_on"]["auto-code"]["condition"] == "service_healthy"
        assert tunnel["restart"] == "unless-stopped"

    def test_each_service_gets_only_its_own_secrets(self, services: dict[str, Any]) -> None:
        # The token reaches cloudflared from its own file; the app's .env never holds it.
        tunnel = services["cloudflared"]
        assert tunnel["env_file"] == ["../.env.tunnel"]
        assert ".env.tunnel" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
        assert "environment" not in tunnel
        assert services["auto-code"]["env_file"] == ["../.env"]
        assert "TUNNEL_TOKEN" not in COMPOSE.read_text(encoding="utf-8").split("services:", 1)[1].replace(
            "`TUNNEL_TOKEN=...`", "")
        pg_env = set(services["postgres"]["environment"])
        assert pg_env == {"POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD"}

    def test_cloudflared_is_confined(self, services: dict[str, Any]) -> None:
        tunnel = services["cloudflared"]
        assert tunnel["cap_drop"] == ["ALL"] and "cap_add" not in tunnel
        assert tunnel["read_only"] is True
        assert tunnel["security_opt"] == ["no-new-privileges:true"]
        assert "mem_limit" in tunnel and "pids_limit" in tunnel

    def test_postgres_is_a_profile_with_volume_and_healthcheck(self, services: dict[str, Any]) -> None:
        pg = services["postgres"]
        assert pg["profiles"] == ["postgres"]
        # An exact version, not the floating major tag (no digest known here; deployment-plan.md §8).
        assert re.fullmatch(r"postgres:16\.\d+-bookworm(@sha256:[0-9a-f]{64})?", pg["image"])
        assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
        assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
        assert all(p.startswith("${POSTGRES_BIND_ADDR:-127.0.0.1}:") for p in pg["ports"])
        assert "env_file" not in pg


# ----- compose/seccomp-sandbox.json, compose/apparmor-auto-code-sandbox ------------------------------
def seccomp_profile() -> dict[str, Any]:
    return json.loads(SECCOMP.read_text(encoding="utf-8"))


def split_seccomp(profile: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the profile without auto-code's rules, auto-code's rules): ours carry an `auto-code` comment."""
    ours = [r for r in profile["syscalls"] if r.get("comment", "").startswith("auto-code sandbox:")]
    upstream = dict(profile, syscalls=[r for r in profile["syscalls"] if r not in ours])
    return upstream, ours


def canonical_sha256(doc: Any) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class TestSeccompProfile:
    def test_compose_names_the_file_next_to_it(self) -> None:
        # Compose resolves the path against the project directory: the compose file's folder.
        app = compose_services(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))["auto-code"]
        ref = [o.split("=", 1)[1] for o in app["security_opt"] if o.startswith("seccomp=")]
        assert ref == [SECCOMP.name]
        assert (COMPOSE.parent / ref[0]).is_file()

    def test_is_valid_json_and_denies_by_default(self) -> None:
        profile = seccomp_profile()
        assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
        assert any(a["architecture"] == "SCMP_ARCH_X86_64" for a in profile["archMap"])
        assert all(r["names"] and r["action"].startswith("SCMP_ACT_") for r in profile["syscalls"])

    def test_docker_default_is_kept_unchanged(self) -> None:
        # Every rule of Docker's default, unchanged and in order: the digest of the rest of the file.
        upstream, _ = split_seccomp(seccomp_profile())
        assert canonical_sha256(upstream) == DOCKER_DEFAULT_SECCOMP_SHA256, (
            "the Docker-default part of compose/seccomp-sandbox.json changed; see compose/README.md"
        )

    def test_additions_are_exactly_what_bubblewrap_needs(self) -> None:
        upstream, ours = split_seccomp(seccomp_profile())
        # Unconditional allows (no args, includes or excludes), appended at the end.
        assert [r["names"] for r in ours] == SANDBOX_SECCOMP_ADDITIONS
        assert all(r["action"] == "SCMP_ACT_ALLOW" and set(r) == {"names", "action", "comment"} for r in ours)
        assert seccomp_profile()["syscalls"][-len(ours):] == ours
        # What they open, Docker's default allows only with CAP_SYS_ADMIN (or, pivot_root, never).
        added = {n for r in ours for n in r["names"]}
        unconditional = {n for r in upstream["syscalls"]
                         if r["action"] == "SCMP_ACT_ALLOW"
                         and not (r.get("args") or r.get("includes") or r.get("excludes"))
                         for n in r["names"]}
        assert not added & unconditional
        sys_admin = {n for r in upstream["syscalls"]
                     if r.get("includes", {}).get("caps") == ["CAP_SYS_ADMIN"] for n in r["names"]}
        assert added - sys_admin == {"pivot_root"}

    def test_nothing_beyond_the_sandbox_is_opened(self) -> None:
        _, ours = split_seccomp(seccomp_profile())
        added = {n for r in ours for n in r["names"]}
        for name in ("setns", "sethostname", "chroot", "clone3", "bpf", "keyctl", "open_tree",
                     "fsopen", "move_mount", "mount_setattr", "ptrace", "init_module", "kexec_load"):
            assert name not in added, name


class TestAppArmorProfile:
    def rules(self) -> list[str]:
        lines = [ln.split("#", 1)[0].strip() if not ln.lstrip().startswith("#include") else ln.strip()
                 for ln in APPARMOR.read_text(encoding="utf-8").splitlines()]
        return [ln for ln in lines if ln]

    def test_compose_names_the_profile_the_file_defines(self) -> None:
        app = compose_services(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))["auto-code"]
        names = [o.split("=", 1)[1] for o in app["security_opt"] if o.startswith("apparmor=")]
        assert names == ["auto-code-sandbox"]
        assert 'profile "auto-code-sandbox" flags=(attach_disconnected,mediate_deleted) {' in self.rules()

    def test_docker_default_with_only_mounts_allowed(self) -> None:
        rules = self.rules()
        # The one change to docker-default.
        assert "deny mount," not in rules
        assert "mount," in rules and "pivot_root," in rules
        # docker-default's write denials stay: with systempaths=unconfined they are what keeps
        # /proc/sys and /sys read-only for the container's root.
        for kept in ("abi <abi/3.0>,", "deny network alg,", "umount,",
                     "deny @{PROC}/* w,", "deny @{PROC}/sys/[^k]** w,",
                     "deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,",
                     "deny @{PROC}/sysrq-trigger rwklx,", "deny @{PROC}/kcore rwklx,",
                     "deny /sys/[^f]*/** wklx,", "deny /sys/firmware/** rwklx,",
                     "deny /sys/kernel/security/** rwklx,",
                     'ptrace (trace,tracedby,read,readby) peer="auto-code-sandbox",'):
            assert kept in rules, kept
        # Nothing broader: no unconfined flag, no userns grant beyond abi/3.0's, no other allows.
        assert "unconfined" not in next(r for r in rules if r.startswith("profile"))
        assert not [r for r in rules if r.startswith(("userns", "change_profile", "dbus", "unix"))]

    def test_compiles_with_apparmor_parser(self, tmp_path: Path) -> None:
        # Compiles to a binary policy without loading it (no AppArmor kernel needed).
        parser = shutil.which("apparmor_parser")
        if parser is None:
            pytest.skip("apparmor_parser not installed (apt-get install apparmor)")
        out = tmp_path / "policy.bin"
        argv = [parser, "--skip-kernel-load", "--skip-cache", "-o", str(out), str(APPARMOR)]
        done = run_cmd(argv, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert out.stat().st_size > 0


class TestComposeConfig:
    """`docker compose -f compose/auto-code.yml config` on a copy of the tree with .env.example as .env."""

    @pytest.fixture(scope="class")
    @classmethod
    def client(cls) -> list[str]:
        argv, detail = compose_client()
        if argv is None:
            pytest.skip(f"no compose client, compose config not validated: {detail}")
        return argv

    @pytest.fixture
    def tree(self, tmp_path: Path) -> Path:
        (tmp_path / "compose").mkdir()
        shutil.copy(COMPOSE, tmp_path / "compose" / "auto-code.yml")
        shutil.copy(SECCOMP, tmp_path / "compose" / SECCOMP.name)  # the client reads it
        shutil.copy(DOCKERFILE, tmp_path / "Dockerfile")
        shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
        (tmp_path / ".env.tunnel").write_text("TUNNEL_TOKEN=replace-with-cloudflare-tunnel-token\n")
        return tmp_path

    def config(self, client: list[str], tree: Path, *extra: str) -> dict[str, Any]:
        argv = [*client, *extra[:2], "-f", "compose/auto-code.yml", *extra[2:], "config"]
        done = run_cmd(argv, cwd=tree)
        assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stderr}"
        return yaml.safe_load(done.stdout)

    def test_config_validates_and_reads_the_env_file(self, client: list[str], tree: Path) -> None:
        services = self.config(client, tree)["services"]
        app = services["auto-code"]
        assert "ports" not in app
        env = app["environment"]
        # env_file ../.env reached the app (the path is relative to compose/).
        assert env["REPO_URL"] == "https://github.com/your-org/your-repo.git"
        assert env["NODE_ENV"] == "production"
        assert env["WORKSPACE_DIR"] == "/workspace"
        assert app["hostname"] == "auto-code-1"
        assert sorted(app["security_opt"]) == sorted(APP_SECURITY_OPT)
        assert app["cap_drop"] == ["ALL"]
        assert "TUNNEL_TOKEN" not in env
        assert app["healthcheck"]["start_interval"] == "1s"

    def test_env_file_flag_drives_interpolation(self, client: list[str], tree: Path) -> None:
        env = (tree / ".env").read_text()
        env = env.replace("EXECUTOR_ID=auto-code-1", "EXECUTOR_ID=auto-code-7")
        (tree / ".env").write_text(env + "POSTGRES_PASSWORD=pw-123\n")
        (tree / ".env.tunnel").write_text("TUNNEL_TOKEN=tok-123\n")
        services = self.config(client, tree, "--env-file", ".env")["services"]
        assert services["auto-code"]["hostname"] == "auto-code-7"
        assert services["auto-code"]["environment"]["EXECUTOR_ID"] == "auto-code-7"
        assert services["cloudflared"]["environment"] == {"TUNNEL_TOKEN": "tok-123"}
        assert "TUNNEL_TOKEN" not in services["auto-code"]["environment"]
        assert "TUNNEL_TOKEN" not in services.get("postgres", {}).get("environment", {})

    def test_postgres_profile_validates(self, client: list[str], tree: Path) -> None:
        services = self.config(client, tree, "--env-file", ".env", "--profile", "postgres")["services"]
        assert services["postgres"]["image"].startswith("postgres:16.")
