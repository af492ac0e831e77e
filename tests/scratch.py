"""`SCRATCH`: where sandbox tests put workspaces — outside /tmp, /var/tmp, /run and HOME.

The sandbox hides those wholesale, so a workspace under pytest's tmp_path would be invisible inside
for the wrong reason and a broken workspace mask would go unnoticed. Production's /workspace is
outside them; so is a scratch folder of the checkout, unless the checkout itself lies in one of them
(a CI clone under /tmp): then a folder under /srv (root) or /var/lib is used instead.
"""

from __future__ import annotations

import os
from pathlib import Path

_HIDDEN = [Path("/tmp"), Path("/var/tmp"), Path("/run")]
if os.environ.get("HOME"):
    _HIDDEN.append(Path(os.path.realpath(os.environ["HOME"])))


def _outside_hidden(path: Path) -> bool:
    real = Path(os.path.realpath(path))
    return not any(real == h or h in real.parents for h in _HIDDEN)


def _scratch() -> Path:
    candidates = [Path(__file__).resolve().parents[1] / ".test-workspaces",
                  Path("/srv/auto-code-test-workspaces"), Path("/var/lib/auto-code-test-workspaces")]
    for candidate in candidates:
        if not _outside_hidden(candidate):
            continue
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    return candidates[0]  # nothing better: the tests still run, the masks are then also /tmp's


SCRATCH = _scratch()
