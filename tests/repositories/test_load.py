"""The repositories file: TOML and YAML read into typed configs with the environment settings as
defaults; a bad file refused at start-up with every problem in one message; no file = the single
repository of the environment settings, unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.errors import ConfigError
from app.repositories import load_repositories
from app.repositories.config import DEFAULT_NAME
from tests.conftest import make_settings

TWO_TOML = """
[[repositories]]
name = "web"
url = "https://github.com/acme/web.git"
lint_command = ["npm", "run", "lint"]
enable_lint = true
max_concurrent_runs = 1
token_env = "GH_TOKEN_WEB"
[[repositories.routes]]
project = "WEB"
[[repositories.routes]]
component = "Frontend"

[[repositories]]
name = "api"
url = "https://ghe.example.com/acme/api.git"
github_repository = "acme/api"
github_api_url = "https://ghe.example.com/api/v3"
base_branch = "develop"
budget_usd = 2.5
default = true
in_repo_overrides = ["test_command", "instructions"]
[[repositories.routes]]
field = "customfield_10042"
value = "backend"
"""

TWO_YAML = """
repositories:
  - name: web
    url: https://github.com/acme/web.git
    lint_command: [npm, run, lint]
    enable_lint: true
    max_concurrent_runs: 1
    token_env: GH_TOKEN_WEB
    routes: [{project: WEB}, {component: Frontend}]
  - name: api
    url: https://ghe.example.com/acme/api.git
    github_repository: acme/api
    github_api_url: https://ghe.example.com/api/v3
    base_branch: develop
    budget_usd: 2.5
    default: true
    in_repo_overrides: [test_command, instructions]
    routes: [{field: customfield_10042, value: backend}]
"""

ENV = {"GH_TOKEN_WEB": "ghp_web_token_0123456789abcdef"}


def _settings(tmp_path: Path, name: str, text: str, **env: str):
    path = tmp_path / name
    path.write_text(text)
    return make_settings(tmp_path / "ws", REPOSITORIES_FILE=str(path),
                         GH_TOKEN="ghp_service_default_0123456789", TEST_COMMAND='["pytest", "-q"]', **env)


@pytest.mark.parametrize(("name", "text"), [("repos.toml", TWO_TOML), ("repos.yaml", TWO_YAML)])
def test_two_repositories_read_with_settings_as_defaults(tmp_path: Path, name: str, text: str) -> None:
    web, api = load_repositories(_settings(tmp_path, name, text), environ=ENV)
    assert (web.name, api.name) == ("web", "api")
    assert web.lint_command == ("npm", "run", "lint") and web.enable_lint is True
    assert web.test_command == ("pytest", "-q")  # left out: TEST_COMMAND
    assert web.github_slug == "acme/web" and web.github_api_url == "https://api.github.com"
    assert web.token is not None and web.token.get_secret_value() == ENV["GH_TOKEN_WEB"]
    assert ENV["GH_TOKEN_WEB"] not in repr(web)  # SecretStr, and repr=False
    assert web.max_concurrent_runs == 1 and [r.project for r in web.routes] == ["WEB", None]
    assert api.base_branch == "develop" and api.github_slug == "acme/api"
    assert api.github_api_url == "https://ghe.example.com/api/v3" and api.budget_usd == 2.5
    assert api.token is not None and api.token.get_secret_value() == "ghp_service_default_0123456789"
    assert api.default is True and api.routes[0].field == "customfield_10042"
    assert api.in_repo_overrides == ("test_command", "instructions")


BAD = """
[[repositories]]
name = "Web Site"
url = "https://user:pw@github.com/acme/web.git"
lint_comand = ["npm", "lint"]
token_env = "GH_TOKEN_MISSING"
[[repositories.routes]]
field = "customfield_1"

[[repositories]]
name = "api"
url = "/srv/git/api.git"
default = true
max_concurrent_runs = 9
enable_tests = true
test_command = []

[[repositories]]
name = "api"
url = "/srv/git/api2.git"
default = true

[[repositories]]
name = "orphan"
url = "/srv/git/orphan.git"
"""


def test_bad_file_refused_with_every_problem_named(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "repos.toml", BAD, GITHUB_CLIENT="local", MAX_CONCURRENT_RUNS="4")
    with pytest.raises(ConfigError) as caught:
        load_repositories(settings, environ={})
    message = caught.value.detail
    assert message.startswith(f"invalid REPOSITORIES_FILE {settings.repositories_file}: ")
    for problem in (
        "repositories[0] (Web Site): token_env GH_TOKEN_MISSING is not set",
        "repositories[0] (Web Site): name: must be 1-40 characters",
        "repositories[0] (Web Site): url: must not carry credentials",
        "repositories[0] (Web Site): lint_comand: Extra inputs are not permitted",
        "repositories[0] (Web Site): routes.0: `field` and `value` go together",
        "repositories[1] (api): max_concurrent_runs 9 is more than MAX_CONCURRENT_RUNS 4",
        "repositories[1] (api): enable_tests is on but test_command is empty",
        "repository name 'api' is used 2 times",
        "more than one default repository: api, api",
        "repository 'orphan' has no routes and is not the default: no ticket can reach it",
    ):
        assert problem in message, problem
    assert "pw@" not in message and ":pw" not in message  # a rejected value is never quoted


@pytest.mark.parametrize(("name", "text", "problem"), [
    ("repos.toml", "repositories = [", "not valid TOML"),
    ("repos.yaml", "repositories: [a, {", "not valid YAML"),
    ("repos.json", "{}", "must end in .toml, .yaml or .yml"),
    ("repos.toml", "[[repo]]\nname='x'", "a non-empty list `repositories`"),
    ("repos.yaml", "repositories: []", "a non-empty list `repositories`"),
])
def test_unreadable_file_refused(tmp_path: Path, name: str, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="invalid REPOSITORIES_FILE") as caught:
        load_repositories(_settings(tmp_path, name, text), environ={})
    assert problem in caught.value.detail


def test_missing_file_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "ws", REPOSITORIES_FILE=str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="cannot read it"):
        load_repositories(settings, environ={})


def test_github_api_needs_a_slug_and_a_token(tmp_path: Path) -> None:
    text = '[[repositories]]\nname = "a"\nurl = "/srv/a.git"\ndefault = true\n'
    settings = make_settings(tmp_path / "ws", REPOSITORIES_FILE=str(tmp_path / "r.toml"), GITHUB_CLIENT="api")
    (tmp_path / "r.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_repositories(settings, environ={})
    assert "github_repository (owner/name) is required" in caught.value.detail
    assert "no GitHub token" in caught.value.detail


def test_no_file_is_the_environment_settings_as_one_entry(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "ws", REPO_URL="https://github.com/acme/widgets.git",
                             BASE_BRANCH="trunk", GH_TOKEN="ghp_single_repo_token_0123456789",
                             LINT_COMMAND='["make", "lint"]', ENABLE_LINT="1",
                             ENABLE_REVIEW="1", GATE_MAX_ROUNDS="5", CLAUDE_MAX_BUDGET_USD="7")
    (only,) = load_repositories(settings, environ={})
    assert only.name == DEFAULT_NAME and only.default is True and only.routes == ()
    assert only.url == settings.repo_url and only.base_branch == "trunk"
    assert only.github_slug == "acme/widgets" == settings.github_repo_slug
    assert only.token == settings.gh_token and only.github_api_url == settings.github_api_url
    assert only.lint_command == ("make", "lint") and only.enable_lint and only.enable_review
    assert (only.enable_setup, only.enable_tests) == (settings.enable_setup, settings.enable_tests)
    assert only.setup_command == tuple(settings.setup_command)
    assert only.gate_max_rounds == 5 and only.budget_usd == 7.0
    assert only.in_repo_overrides == ()  # nothing from the repository itself unless the operator says so
