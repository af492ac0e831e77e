"""A throwaway target repository for `auto-code demo` and the test suite.

`create_demo_repo(root)` makes `root/remote.git`, a bare "remote" whose branch `main` holds a tiny
Python project with its OWN lint and test scripts, runnable with plain `python3` (no pnpm, no
network): `scripts/lint.py` fails on trailing whitespace, tabs or lines over 100 characters in
`*.py`/`*.md`; `scripts/test.py` runs `unittest` discovery over `tests/`. Point `REPO_URL` at
`DemoRepo.remote` and the checks at `DemoRepo.lint_command` / `test_command`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.proc import run_command_sync, scrubbed_env

DEMO_BRANCH = "main"
SEED_IDENTITY = {
    "GIT_AUTHOR_NAME": "Demo Seed",
    "GIT_AUTHOR_EMAIL": "seed@demo.invalid",
    "GIT_COMMITTER_NAME": "Demo Seed",
    "GIT_COMMITTER_EMAIL": "seed@demo.invalid",
}

SEED_FILES: dict[str, str] = {
    ".gitignore": "__pycache__/\n*.pyc\n",
    "README.md": (
        "# demo-greeter\n\n"
        "A tiny project used by `auto-code demo`.\n\n"
        "- lint: `python3 scripts/lint.py`\n"
        "- test: `python3 scripts/test.py`\n"
    ),
    "greeter/__init__.py": (
        '"""demo-greeter: says hello."""\n\nfrom greeter.greeting import greet\n\n__all__ = ["greet"]\n'
    ),
    "greeter/greeting.py": (
        '"""Greetings."""\n\n\n'
        "def greet(name: str) -> str:\n"
        '    """Return a friendly greeting for `name`."""\n'
        '    return f"Hello, {name}!"\n'
    ),
    "tests/__init__.py": "",
    "tests/test_greeting.py": (
        "import unittest\n\n"
        "from greeter import greet\n\n\n"
        "class GreetTest(unittest.TestCase):\n"
        "    def test_greet(self) -> None:\n"
        '        self.assertEqual(greet("Ada"), "Hello, Ada!")\n\n\n'
        'if __name__ == "__main__":\n'
        "    unittest.main()\n"
    ),
    "scripts/lint.py": (
        '"""Lint: no trailing whitespace, no tabs, no line over 100 chars in *.py and *.md."""\n\n'
        "import sys\n"
        "from pathlib import Path\n\n"
        "MAX = 100\n"
        'SKIP = {".git", "__pycache__", ".venv", "node_modules"}\n\n\n'
        "def problems(path: Path) -> list[str]:\n"
        "    found = []\n"
        '    text = path.read_text(encoding="utf-8", errors="replace")\n'
        "    for no, line in enumerate(text.splitlines(), 1):\n"
        "        if line != line.rstrip():\n"
        '            found.append(f"{path}:{no}: trailing whitespace")\n'
        '        if "\\t" in line:\n'
        '            found.append(f"{path}:{no}: tab character")\n'
        "        if len(line) > MAX:\n"
        '            found.append(f"{path}:{no}: line too long ({len(line)} > {MAX})")\n'
        "    return found\n\n\n"
        "def main() -> int:\n"
        '    root = Path(".")\n'
        "    files = sorted(\n"
        '        p for p in root.rglob("*")\n'
        '        if p.suffix in {".py", ".md"} and p.is_file() and not SKIP & set(p.parts)\n'
        "    )\n"
        "    found = [msg for p in files for msg in problems(p)]\n"
        "    for msg in found:\n"
        "        print(msg)\n"
        '    print(f"lint: {len(files)} files checked, {len(found)} problem(s)")\n'
        "    return 1 if found else 0\n\n\n"
        'if __name__ == "__main__":\n'
        "    sys.exit(main())\n"
    ),
    "scripts/test.py": (
        '"""Tests: unittest discovery over tests/ (fails when no test ran)."""\n\n'
        "import sys\n"
        "import unittest\n"
        "from pathlib import Path\n\n\n"
        "def main() -> int:\n"
        "    root = Path(__file__).resolve().parent.parent\n"
        "    sys.path.insert(0, str(root))\n"
        '    suite = unittest.defaultTestLoader.discover(str(root / "tests"), top_level_dir=str(root))\n'
        "    result = unittest.TextTestRunner(verbosity=2).run(suite)\n"
        "    return 0 if result.wasSuccessful() and result.testsRun > 0 else 1\n\n\n"
        'if __name__ == "__main__":\n'
        "    sys.exit(main())\n"
    ),
}


class DemoRepoError(RuntimeError):
    """Building the demo repository failed (git missing or refused)."""


@dataclass(frozen=True)
class DemoRepo:
    """Where the demo target lives and how to check it."""

    root: Path
    remote: Path  # bare repository acting as `origin`
    base_branch: str = DEMO_BRANCH
    lint_command: list[str] = field(default_factory=lambda: ["python3", "scripts/lint.py"])
    test_command: list[str] = field(default_factory=lambda: ["python3", "scripts/test.py"])
    files: dict[str, str] = field(default_factory=lambda: dict(SEED_FILES))

    def env(self) -> dict[str, str]:
        """Settings for a service working on this repo (names of the configuration contract)."""
        return {
            "REPO_URL": str(self.remote),
            "BASE_BRANCH": self.base_branch,
            "LINT_COMMAND": json.dumps(self.lint_command),
            "TEST_COMMAND": json.dumps(self.test_command),
            "SETUP_COMMAND": "",
        }


def git(cwd: Path, *args: str, identity: Mapping[str, str] = SEED_IDENTITY) -> str:
    """Run `git *args` in `cwd` and return its output (merged stdout/stderr): argv only, a scrubbed
    environment carrying the committer `identity`, a 60 s timeout. Raises DemoRepoError on failure.
    Also the git of the test fixtures (tests/gitrepos.py), with their own identity."""
    res = run_command_sync(["git", *args], cwd=cwd, env=scrubbed_env(identity), timeout=60)
    if not res.ok:
        raise DemoRepoError(f"git {' '.join(args)} failed ({res.exit_code}): {res.output.strip()}")
    return res.output


def create_demo_repo(root: Path) -> DemoRepo:
    """Create `root/remote.git` (bare, branch `main` = the seed project, one commit).

    `root` is created if needed; an existing `remote.git` there is replaced. Raises DemoRepoError."""
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    seed = root / "seed"
    remote = root / "remote.git"
    for old in (seed, remote):
        if old.exists():
            shutil.rmtree(old)
    seed.mkdir()
    for rel, text in SEED_FILES.items():
        path = seed / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    git(root, "init", "--quiet", f"--initial-branch={DEMO_BRANCH}", str(seed))
    git(seed, "add", "-A")
    git(seed, "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "Seed the demo project")
    git(root, "clone", "--quiet", "--bare", str(seed), str(remote))
    shutil.rmtree(seed)  # the bare remote is the single source of truth
    return DemoRepo(root=root, remote=remote)
