"""Which Python bytecode a check may use: the interpreter's own, never any found in the worktree.

Python trusts a cached `.pyc` whose recorded source size and mtime (whole seconds) match. An edit
that keeps a file's size within the same second (`return 3` → `return 2`) would be judged by stale
bytecode: one a previous check wrote, or one the agent's own test run left in the worktree's
`__pycache__`. So:
- no check writes bytecode (`PYTHONDONTWRITEBYTECODE=1`);
- before each check, every `__pycache__` in the worktree is deleted (a directory, or a link or file
  of that name: Python would follow a link), without following links; nothing else runs in the
  sandbox meanwhile (each call's processes die with it), so nothing can write one back before the
  check starts.
Bytecode outside the worktree (the standard library, installed packages) is read-only to the
sandbox and the operator's: it stays usable. That is the point of this design over an empty
`PYTHONPYCACHEPREFIX` (which hides every `.pyc`, so each check compiled the standard library
modules it imports from source: +0.3 to +1 s per `python3` check on a 2-core machine,
bench/pipeline_overhead.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from app.services.workspace.layout import rmtree_writable

BYTECODE_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}
_CACHE_DIR = "__pycache__"


def purge_tree_bytecode(root: Path) -> int:
    """Delete every `__pycache__` under `root` (links are removed, never followed); return how many.
    Raises OSError when one cannot be deleted: the check must not run on bytecode it cannot trust."""
    removed = 0
    for top, dirs, files in os.walk(root):  # followlinks=False: a linked directory is not entered
        for name in [*dirs, *files]:
            if name != _CACHE_DIR:
                continue
            path = os.path.join(top, name)
            if os.path.isdir(path) and not os.path.islink(path):
                rmtree_writable(path)
            else:
                os.unlink(path)
            removed += 1
        dirs[:] = [d for d in dirs if d != _CACHE_DIR]
    return removed
