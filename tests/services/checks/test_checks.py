"""Checks: the real command runner with real subprocesses (pass, fail, missing program, capped
output, a hanging lint killed with its children, no stale Python bytecode after a same-size edit)
and the scripted fake; one contract for both."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

import pytest

from app.proc import run_command, scrubbed_env
from app.services.checks import CheckResult, Checks, CommandChecks, build_checks
from app.services.sandbox.unsandboxed import Unsandboxed
from tests.conftest import make_settings
from tests.fakes.checks import ScriptedChecks
from tests.gitrepos import git, make_remote
from tests.procs import marked_processes, wait_until
from tests.test_proc import bounded

PY = sys.executable


def _checks(tmp_path: Path, **commands: object) -> CommandChecks:
    env = {k.upper(): json.dumps(v) if isinstance(v, list) else str(v) for k, v in commands.items()}
    return CommandChecks(make_settings(tmp_path / "ws", **env))


class TestContract:
    """What the runner relies on, for the real runner and the fake alike."""

    @pytest.fixture(params=["command", "scripted"])
    def pair(self, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Checks, Checks]:
        """(a Checks whose lint passes, a Checks whose lint fails)."""
        if request.param == "command":
            return (_checks(tmp_path, lint_command=[PY, "-c", "print('clean')"]),
                    _checks(tmp_path, lint_command=[PY, "-c", "import sys; print('E1 bad'); sys.exit(2)"]))
        return ScriptedChecks({"lint": [True]}), ScriptedChecks({"lint": ["E1 bad"]})

    async def test_pass_and_fail(self, pair: tuple[Checks, Checks], tmp_path: Path) -> None:
        good, bad = pair
        ok = await good.run("lint", tmp_path)
        assert ok.name == "lint" and ok.passed and ok.exit_code == 0 and not ok.timed_out
        ko = await bad.run("lint", tmp_path)
        assert not ko.passed and ko.exit_code not in (0, None) and "E1 bad" in ko.output


class TestCommandChecks:
    async def test_runs_in_the_worktree_without_secrets(self, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("GH_TOKEN", "ghp_must_not_leak")
        code = "import os; print(os.getcwd()); print(os.environ.get('GH_TOKEN')); print(os.environ['CI'])"
        checks = _checks(tmp_path, test_command=[PY, "-c", code])
        res = await checks.run("test", tmp_path)
        assert res.passed
        assert res.output.split() == [str(tmp_path), "None", "true"]

    async def test_missing_program_is_a_failed_result(self, tmp_path: Path) -> None:
        checks = _checks(tmp_path, setup_command=["pnpm-not-installed-xyz", "install"])
        res = await checks.run("setup", tmp_path)
        assert not res.passed and res.exit_code == 127 and "pnpm-not-installed-xyz" in res.output

    async def test_empty_command_is_skipped_as_passed(self, tmp_path: Path) -> None:
        res = await _checks(tmp_path, setup_command="").run("setup", tmp_path)
        assert res.passed and "no setup command" in res.output

    async def test_output_capped_keeping_the_failure_at_the_end(self, tmp_path: Path) -> None:
        code = "import sys\nfor i in range(5000): print('noise', i)\nprint('FAILED: test_x')\nsys.exit(1)"
        res = await _checks(tmp_path, test_command=[PY, "-c", code], check_output_max_chars=1000).run(
            "test", tmp_path)
        assert not res.passed and len(res.output) <= 1000
        assert res.output.rstrip().endswith("FAILED: test_x") and "chars cut" in res.output

    async def test_hanging_lint_is_killed_with_its_children(self, tmp_path: Path) -> None:
        # Inside the sandbox pids are the sandbox's own, so the processes are found on the host by a
        # marker in their command line instead.
        marker = f"hang-{uuid.uuid4().hex}"
        hang = (
            "import os, subprocess, sys, time\n"
            f"c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', {marker!r}])\n"
            "print('linting...', flush=True)\n"
            "time.sleep(600)\n"
        )
        checks = _checks(tmp_path, lint_command=[PY, "-c", hang, marker], check_timeout_sec="1.5")
        started = time.monotonic()
        task = asyncio.ensure_future(checks.run("lint", tmp_path))
        while len(marked_processes(marker)) < 2 and time.monotonic() - started < 10:
            await asyncio.sleep(0.05)
        assert len(marked_processes(marker)) == 2  # the parent and its child were both alive
        res = await bounded(task)  # fails fast if the group kill regresses
        assert time.monotonic() - started < 10
        assert res.timed_out and not res.passed and res.exit_code is None
        assert "linting..." in res.output and "timeout" in res.output
        assert wait_until(lambda: not marked_processes(marker))

    async def test_demo_repo_lint_and_tests_for_real(self, tmp_path: Path) -> None:
        demo = make_remote(tmp_path / "demo")
        work = tmp_path / "work"
        git(tmp_path, "clone", "--quiet", str(demo.remote), str(work))
        checks = _checks(tmp_path, lint_command=demo.lint_command, test_command=demo.test_command)
        assert (await checks.run("lint", work)).passed
        assert (await checks.run("test", work)).passed
        (work / "greeter" / "greeting.py").write_text("def greet(name):\n    return name   \n")
        lint, test = await asyncio.gather(checks.run("lint", work), checks.run("test", work))
        assert not lint.passed and "trailing whitespace" in lint.output
        assert not test.passed and "FAIL" in test.output

    def test_factory_builds_command_checks_in_the_given_sandbox(self, tmp_path: Path) -> None:
        s = make_settings(tmp_path / "ws")
        sandbox = Unsandboxed()
        checks = build_checks(s, sandbox)
        assert isinstance(checks, CommandChecks) and checks.sandbox is sandbox
        assert build_checks(s, sandbox) is not checks  # no cache: the composition root calls it once


class TestStaleBytecode:
    """An edit that keeps a module's size and mtime second (the agent's `return 3` → `return 2`)
    must be seen by the next check run: Python would otherwise trust a cached `.pyc`."""

    OLD = "def answer():\n    return 3\n"
    NEW = "def answer():\n    return 2\n"
    UNITTEST = ("import unittest\n\nimport mod\n\n\nclass T(unittest.TestCase):\n"
                "    def test_answer(self):\n        self.assertEqual(mod.answer(), 2)\n")

    def _project(self, tmp_path: Path) -> tuple[Path, Path]:
        src = tmp_path / "proj"
        src.mkdir()
        (src / "mod.py").write_text(self.OLD)
        (src / "test_mod.py").write_text(self.UNITTEST)
        return src, src / "mod.py"

    def _same_size_same_mtime_edit(self, module: Path) -> None:
        before = module.stat()
        module.write_text(self.NEW)
        os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))  # deterministic "same second"
        after = module.stat()
        assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    async def test_edit_after_a_failing_check_is_seen(self, tmp_path: Path) -> None:
        src, module = self._project(tmp_path)
        checks = _checks(tmp_path, test_command=[PY, "-m", "unittest", "-q", "test_mod"])
        first = await checks.run("test", src)
        assert not first.passed and "3 != 2" in first.output
        self._same_size_same_mtime_edit(module)
        second = await checks.run("test", src)
        assert second.passed, second.output
        assert not list(src.rglob("*.pyc"))  # the check wrote no bytecode into the worktree

    async def test_bytecode_left_in_the_tree_is_not_trusted(self, tmp_path: Path) -> None:
        src, module = self._project(tmp_path)
        # The agent's own test run (outside the checks) compiles the module into __pycache__.
        agent_run = await run_command([PY, "-c", "import mod; print(mod.answer())"], cwd=src,
                                      env=scrubbed_env(), timeout=30)
        assert agent_run.output.strip() == "3" and list(src.rglob("mod.*.pyc"))
        self._same_size_same_mtime_edit(module)
        checks = _checks(tmp_path, test_command=[PY, "-m", "unittest", "-q", "test_mod"])
        res = await checks.run("test", src)
        assert res.passed, res.output


class TestScriptedChecks:
    async def test_queue_then_default_and_records_calls(self, tmp_path: Path) -> None:
        checks = ScriptedChecks({"test": [False, "same failure", "same failure", True]})
        outcomes = [await checks.run("test", tmp_path) for _ in range(5)]
        assert [r.passed for r in outcomes] == [False, False, False, True, True]
        assert outcomes[1].output == outcomes[2].output == "same failure"
        assert checks.count("test") == 5 and checks.calls[0] == ("test", tmp_path)

    async def test_default_fail_and_ready_results(self, tmp_path: Path) -> None:
        timed_out = CheckResult(name="lint", passed=False, exit_code=None, output="slow", duration_s=9.0,
                                timed_out=True)
        checks = ScriptedChecks({"lint": [timed_out]}, default=False)
        assert (await checks.run("lint", tmp_path)) is timed_out
        assert not (await checks.run("lint", tmp_path)).passed

    async def test_callable_outcome_looks_at_the_worktree(self, tmp_path: Path) -> None:
        target = tmp_path / "a.py"
        target.write_text("x = 1   \n")

        def no_trailing_space(cwd: Path) -> bool | str:
            text = (cwd / "a.py").read_text()
            return True if all(line == line.rstrip() for line in text.splitlines()) else "a.py:1: trailing"

        checks = ScriptedChecks(default=True)
        checks.push("lint", no_trailing_space, no_trailing_space)
        assert (await checks.run("lint", tmp_path)).output == "a.py:1: trailing"
        target.write_text("x = 1\n")
        assert (await checks.run("lint", tmp_path)).passed
