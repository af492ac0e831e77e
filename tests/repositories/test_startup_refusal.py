"""`auto-code serve` with a bad repositories file: ONE line on stderr, exit 2, every problem of the
file named (a real subprocess in an empty directory, like tests/test_cli_startup.py), before any
database is opened; and the lifespan (`uvicorn app.main:app`) refuses the same file."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.errors import ConfigError
from app.main import create_app
from tests.conftest import make_settings
from tests.test_cli_startup import one_line, serve

BAD = """
[[repositories]]
name = "web"
url = "https://github.com/acme/web.git"
token_env = "GH_TOKEN_WEB"
[[repositories.routes]]
component = "Frontend"

[[repositories]]
name = "web"
url = "https://github.com/acme/web2.git"
enable_lint = true
lint_command = []
"""


def test_serve_names_every_problem_of_the_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "repositories.toml"
    path.write_text(BAD)
    ws = tmp_path / "ws"
    line = one_line(serve(tmp_path, {"WORKSPACE_DIR": str(ws), "REPOSITORIES_FILE": str(path),
                                     "GH_TOKEN": "ghp_test0123456789abcdef"}))
    assert line.startswith(f"auto-code: invalid REPOSITORIES_FILE {path}: ")
    for problem in ("repositories[0] (web): token_env GH_TOKEN_WEB is not set",
                    "repositories[1] (web): enable_lint is on but lint_command is empty",
                    "repository name 'web' is used 2 times",
                    "repository 'web' has no routes and is not the default"):
        assert problem in line, problem
    assert not (ws / "auto-code.sqlite").exists()  # refused before the database was opened


def test_the_lifespan_refuses_it_too(tmp_path: Path) -> None:
    path = tmp_path / "repositories.yaml"
    path.write_text("repositories:\n  - name: web\n    url: /srv/web.git\n    default: maybe\n")
    app = create_app(make_settings(tmp_path / "ws", REPOSITORIES_FILE=str(path)))
    wrong = r"repositories\[0\] \(web\): default: Input should be a valid boolean"
    with pytest.raises(ConfigError, match=wrong), TestClient(app):
        pass
