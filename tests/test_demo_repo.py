"""app.demo_repo: the throwaway target is a real bare repo whose own lint and test scripts work."""

from __future__ import annotations

import json
from pathlib import Path

from app.demo_repo import create_demo_repo
from app.proc import run_command_sync, scrubbed_env
from tests.gitrepos import git, remote_sha


def _clone(tmp_path: Path, remote: Path) -> Path:
    work = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    return work


def _run(cmd: list[str], cwd: Path) -> tuple[int | None, str]:
    res = run_command_sync(cmd, cwd=cwd, env=scrubbed_env(), timeout=60)
    return res.exit_code, res.output


class TestDemoRepo:
    def test_bare_remote_with_main(self, tmp_path: Path) -> None:
        demo = create_demo_repo(tmp_path / "demo")
        assert demo.remote == (tmp_path / "demo" / "remote.git").resolve()
        assert git(demo.remote, "rev-parse", "--is-bare-repository").strip() == "true"
        assert remote_sha(demo.remote, "main") is not None
        work = _clone(tmp_path, demo.remote)
        for rel, text in demo.files.items():
            assert (work / rel).read_text() == text

    def test_seed_passes_its_own_lint_and_tests(self, tmp_path: Path) -> None:
        demo = create_demo_repo(tmp_path / "demo")
        work = _clone(tmp_path, demo.remote)
        code, out = _run(demo.lint_command, work)
        assert code == 0, out
        code, out = _run(demo.test_command, work)
        assert code == 0, out
        assert "test_greet" in out

    def test_lint_catches_whitespace_tabs_and_long_lines(self, tmp_path: Path) -> None:
        demo = create_demo_repo(tmp_path / "demo")
        work = _clone(tmp_path, demo.remote)
        (work / "greeter" / "bad.py").write_text("x = 1   \n\ty = 2\n" + "z = '" + "a" * 120 + "'\n")
        code, out = _run(demo.lint_command, work)
        assert code == 1
        assert "bad.py:1: trailing whitespace" in out
        assert "bad.py:2: tab character" in out
        assert "bad.py:3: line too long" in out

    def test_failing_test_fails_the_test_script(self, tmp_path: Path) -> None:
        demo = create_demo_repo(tmp_path / "demo")
        work = _clone(tmp_path, demo.remote)
        (work / "greeter" / "greeting.py").write_text("def greet(name: str) -> str:\n    return name\n")
        code, out = _run(demo.test_command, work)
        assert code == 1 and "FAIL" in out

    def test_env_names_the_settings(self, tmp_path: Path) -> None:
        demo = create_demo_repo(tmp_path / "demo")
        env = demo.env()
        assert env["REPO_URL"] == str(demo.remote)
        assert json.loads(env["LINT_COMMAND"]) == ["python3", "scripts/lint.py"]

    def test_recreate_replaces_the_old_remote(self, tmp_path: Path) -> None:
        first = create_demo_repo(tmp_path / "demo")
        (first.remote / "marker").write_text("old")
        second = create_demo_repo(tmp_path / "demo")
        assert not (second.remote / "marker").exists()
