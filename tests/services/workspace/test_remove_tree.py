"""A stale worktree the agent left read-only is still removed by a non-root service (the image runs
as uid 10001); what cannot be removed is a clear WorkspaceError, never a bare OSError."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.errors import WorkspaceError
from app.services.workspace.worktrees import remove_tree

NOBODY = 65534


def _as_nobody(fn: Callable[[], object]) -> int:
    """Run `fn()` in a forked child that dropped to uid/gid 65534; its exit code (0 = fn returned)."""
    pid = os.fork()
    if pid == 0:  # the child: already has every module loaded, so no exec and no interpreter access
        code = 3
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fn()
            code = 0
        except WorkspaceError:
            code = 1
        except BaseException:
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.fixture
def read_only_tree() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("needs root to hand the tree to uid 65534")
    # Not under tmp_path: pytest's base temp dir is private to root, so uid 65534 could not reach it.
    base = Path(tempfile.mkdtemp(prefix="auto-code-rmtree-"))
    tree = base / "worktree"
    (tree / "ro" / "sub").mkdir(parents=True)
    (tree / "ro" / "sub" / "f.txt").write_text("x")
    for path in [tree, *tree.rglob("*")]:
        os.chown(path, NOBODY, NOBODY)
    os.chmod(base, 0o777)  # noqa: S103 - a throwaway dir: uid 65534 must reach and delete `worktree`
    os.chmod(tree / "ro", 0o500)  # what `chmod -R a-w` in an agent's script leaves behind
    try:
        yield tree
    finally:
        for path in [base, *base.rglob("*")]:
            if path.is_dir():
                os.chmod(path, 0o700)
        shutil.rmtree(base)


def test_read_only_directories_are_removed_by_a_non_root_owner(read_only_tree: Path) -> None:
    assert _as_nobody(lambda: shutil.rmtree(read_only_tree)) == 2  # plain rmtree: PermissionError
    assert _as_nobody(lambda: remove_tree(read_only_tree)) == 0
    assert not read_only_tree.exists()


def test_what_cannot_be_removed_is_a_workspace_error(read_only_tree: Path) -> None:
    os.chown(read_only_tree / "ro", 0, 0)  # root's directory: nobody may not chmod it
    assert _as_nobody(lambda: remove_tree(read_only_tree)) == 1
    os.chmod(read_only_tree / "ro", 0o700)


def test_a_read_only_pycache_is_purged_by_a_non_root_owner(read_only_tree: Path) -> None:
    """The check's bytecode purge shares remove_tree's way past read-only directories."""
    from app.services.checks.bytecode import purge_tree_bytecode

    cache = read_only_tree / "pkg" / "__pycache__"
    cache.mkdir(parents=True)
    (cache / "m.cpython-311.pyc").write_bytes(b"stale")
    for path in (read_only_tree / "pkg", cache, cache / "m.cpython-311.pyc"):
        os.chown(path, NOBODY, NOBODY)
    os.chmod(cache, 0o500)
    assert _as_nobody(lambda: purge_tree_bytecode(read_only_tree)) == 0
    assert not cache.exists()
    assert (read_only_tree / "ro" / "sub" / "f.txt").exists()
