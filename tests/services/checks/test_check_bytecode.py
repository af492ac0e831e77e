"""Checks trust no bytecode from the worktree (every `__pycache__` there is deleted first, links
removed and never followed) and still use the interpreter's own (no empty `PYTHONPYCACHEPREFIX`,
which made each `python3` check compile the standard library it imports). Real processes, in the
sandbox the settings pick."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.services.checks import CommandChecks
from app.services.checks.bytecode import purge_tree_bytecode
from tests.conftest import make_settings

PY = sys.executable


class TestPurge:
    def test_caches_go_links_are_removed_not_followed(self, tmp_path: Path) -> None:
        tree, outside = tmp_path / "tree", tmp_path / "outside"
        (tree / "a" / "__pycache__").mkdir(parents=True)
        (tree / "a" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"stale")
        (tree / "a" / "m.py").write_text("x = 1\n")
        outside.mkdir()
        (outside / "m.cpython-311.pyc").write_bytes(b"not ours")
        (tree / "b").mkdir()
        (tree / "b" / "__pycache__").symlink_to(outside)  # Python would follow it
        (tree / "c").mkdir()
        (tree / "c" / "__pycache__").write_text("a file of that name")
        (tree / "d").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
        (tmp_path / "elsewhere" / "__pycache__").mkdir(parents=True)  # behind a link: not entered
        assert purge_tree_bytecode(tree) == 3
        assert not list(tree.rglob("__pycache__"))
        assert (tree / "a" / "m.py").exists()
        assert (outside / "m.cpython-311.pyc").read_bytes() == b"not ours"
        assert (tmp_path / "elsewhere" / "__pycache__").is_dir()


class TestInterpreterBytecode:
    async def test_the_standard_librarys_bytecode_is_used(self, tmp_path: Path) -> None:
        probe = ("import sys, unittest; "
                 "print(sys.pycache_prefix, sys.dont_write_bytecode, unittest.__cached__)")
        checks = CommandChecks(make_settings(tmp_path / "ws", TEST_COMMAND=json.dumps([PY, "-c", probe])))
        worktree = tmp_path / "ws" / "worktrees" / "ticket-proj-1"
        worktree.mkdir(parents=True)
        res = await checks.run("test", worktree)
        assert res.passed, res.output
        prefix, dont_write, cached = res.output.split()
        assert prefix == "None" and dont_write == "True"
        assert "__pycache__" in cached  # unittest's own cache next to its source, not a throwaway prefix
