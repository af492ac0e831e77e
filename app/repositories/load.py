"""Read REPOSITORIES_FILE (TOML or YAML) into `RepositoryConfig`s, naming every problem at once.

The file is a list under `repositories` (TOML: `[[repositories]]` tables; YAML: a list), each entry
a repository whose left-out values are the environment settings' (config.settings_defaults). A
repository's GitHub token is never in the file: `token_env` names the variable that holds it
(`GH_TOKEN_<SOMETHING>`, which the service treats as a secret like GH_TOKEN), else GH_TOKEN. When
the service uses GitHub, every repository must end up with a token: GH_TOKEN itself is required
only by the repositories that name no `token_env` (so a file where each names one needs none).

`load_repositories(settings)` is the start-up check: it returns the configs, or raises one
ConfigError whose message lists every problem of the file (as Settings.check_production does), the
rejected values left out (they may be secrets). Without REPOSITORIES_FILE it returns the one entry
of the environment settings, unchanged behaviour for a single-repository service.
"""

from __future__ import annotations

import os
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from pydantic import SecretStr, ValidationError

from app.config import REPOSITORY_TOKEN_PREFIX, Settings
from app.config_checks import is_placeholder
from app.errors import ConfigError
from app.repositories.config import RepositoryConfig, settings_defaults

TOKEN_ENV_PREFIX = REPOSITORY_TOKEN_PREFIX


def load_repositories(settings: Settings,
                      environ: dict[str, str] | None = None) -> tuple[RepositoryConfig, ...]:
    """The service's repositories (see the module docstring). `environ`: where `token_env` values
    are looked up (default: the process environment, then the one `settings` were read from, which
    the lifespan has scrubbed by now, then the `.env` file). Raises ConfigError."""
    path = settings.repositories_file
    if path is None:
        return (RepositoryConfig.from_settings(settings),)
    where = f"REPOSITORIES_FILE {path}"
    try:
        data = _parse(path)
    except ConfigError as exc:
        raise ConfigError(f"invalid {where}: {exc.detail}") from None
    configs, problems = parse_repositories(data, settings, _environment(environ, settings))
    if problems:
        raise ConfigError(f"invalid {where}: " + "; ".join(problems))
    return configs


def parse_repositories(data: object, settings: Settings,
                       environ: dict[str, str]) -> tuple[tuple[RepositoryConfig, ...], list[str]]:
    """The configs of the parsed file and every problem found (the configs are only usable when
    there are none)."""
    entries = data.get("repositories") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        return (), ["it must hold a non-empty list `repositories` (TOML: [[repositories]] tables)"]
    if isinstance(data, dict) and (extra := sorted(set(data) - {"repositories"})):
        return (), [f"unknown top-level keys {extra}: only `repositories` is read"]
    problems: list[str] = []
    configs: list[RepositoryConfig] = []
    defaults = settings_defaults(settings)
    for i, entry in enumerate(entries):
        label = f"repositories[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{label}: must be a table/mapping")
            continue
        if isinstance(entry.get("name"), str):
            label += f" ({entry['name'][:40]})"
        values: dict[str, Any] = {**defaults, **entry}
        token_env = entry.get("token_env")
        if token_env is not None:
            values["token"] = None
            if not isinstance(token_env, str) or not token_env.startswith(TOKEN_ENV_PREFIX):
                problems.append(f"{label}: token_env must name a variable starting with {TOKEN_ENV_PREFIX}")
                values.pop("token_env")
            elif not environ.get(token_env, "").strip():
                problems.append(f"{label}: token_env {token_env} is not set")
            else:
                values["token"] = SecretStr(environ[token_env].strip())
        if "token" in entry:
            problems.append(f"{label}: a token never goes in the file; name its variable in token_env")
            continue
        try:
            config = RepositoryConfig.model_validate(values)
        except ValidationError as exc:
            problems.extend(_describe(label, exc))
            continue
        problems.extend(_entry_problems(label, config, settings))
        configs.append(config)
    problems.extend(_file_problems(configs, settings))
    return tuple(configs), problems


def _entry_problems(label: str, c: RepositoryConfig, settings: Settings) -> list[str]:
    out: list[str] = []
    if settings.uses_github_api and not c.github_slug:
        out.append(f"{label}: github_repository (owner/name) is required: its url is not a github.com URL")
    if settings.uses_github_api and (c.token is None or not c.token.get_secret_value()):
        out.append(f"{label}: no GitHub token (set GH_TOKEN, or token_env)")
    elif settings.is_production and c.token_env and c.token and is_placeholder(c.token.get_secret_value()):
        out.append(f"{label}: token_env {c.token_env} is a placeholder value")  # GH_TOKEN's: config_checks
    if settings.is_production and is_placeholder(c.url):
        out.append(f"{label}: url is a placeholder value")
    if c.max_concurrent_runs is not None and c.max_concurrent_runs > settings.max_concurrent_runs:
        out.append(f"{label}: max_concurrent_runs {c.max_concurrent_runs} is more than MAX_CONCURRENT_RUNS "
                   f"{settings.max_concurrent_runs}")
    for name in ("setup", "lint", "test"):
        on = {"setup": c.enable_setup, "lint": c.enable_lint, "test": c.enable_tests}[name]
        if on and not c.command(name) and f"{name}_command" not in c.in_repo_overrides:
            flag = "enable_tests" if name == "test" else f"enable_{name}"
            out.append(f"{label}: {flag} is on but {name}_command is empty")
    return out


def _file_problems(configs: list[RepositoryConfig], settings: Settings) -> list[str]:
    out: list[str] = []
    names = Counter(c.name for c in configs)
    out += [f"repository name {n!r} is used {k} times" for n, k in sorted(names.items()) if k > 1]
    defaults = [c.name for c in configs if c.default]
    if len(defaults) > 1:
        out.append(f"more than one default repository: {', '.join(defaults)}")
    if len(configs) > 1:
        out += [f"repository {c.name!r} has no routes and is not the default: no ticket can reach it"
                for c in configs if not c.routes and not c.default]
    # The same rule on two repositories makes every ticket it matches ambiguous: a mistake.
    seen: dict[tuple[tuple[str, str], ...], str] = {}
    for c in configs:
        for route in c.routes:
            key = tuple(sorted((k, (v or "").casefold()) for k, v in route.model_dump().items()))
            if key in seen and seen[key] != c.name:
                out.append(f"route {route.describe()} is given to both {seen[key]!r} and {c.name!r}")
            seen.setdefault(key, c.name)
    return out


def _describe(label: str, exc: ValidationError) -> list[str]:
    """Each field error, without the rejected value (it may be a secret)."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(entry)"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append(f"{label}: {loc}: {msg}")
    return out


def _parse(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError("it is not UTF-8 text") from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}") from None
    if suffix in (".yaml", ".yml"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {' '.join(str(exc).split())}") from None
    raise ConfigError("its name must end in .toml, .yaml or .yml (that is how its format is chosen)")


def _environment(environ: dict[str, str] | None, settings: Settings) -> dict[str, str]:
    if environ is not None:
        return environ
    # Settings reads `.env` without exporting it: a GH_TOKEN_<NAME> kept there is looked up there too.
    found = dotenv_values(".env") if Path(".env").is_file() else {}
    kept = {name: value.get_secret_value() for name, value in settings.repository_tokens.items()}
    return {**{k: v for k, v in found.items() if v is not None}, **kept, **os.environ}


__all__ = ["TOKEN_ENV_PREFIX", "load_repositories", "parse_repositories"]
