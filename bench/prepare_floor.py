"""`prepare` on a real repository with long history, beside its floor (numbers, no asserts).

The remote is a bare copy of a repository on this machine (default: the fastapi/fastapi mirror the
library's `fetch` tool leaves under /work/.mirror; any bare repo or clone works: `--mirror PATH`),
served over `file://` with `uploadpack.allowFilter` on, the way GitHub serves partial clones. It is
never vendored: the copy lives in a scratch folder that is removed afterwards.

Each round, a new commit lands on the base branch first (so every fetch fetches something), then,
in rotating order:
- floor: `git fetch` + `git worktree add -B` on a plain shared clone (removal untimed);
- prepare: `GitWorkspace.prepare` as the service runs it (transit fetch, clone state restored
  before each git call, a spare worktree reused), then the agent's kind of edit, then `remove`
  (timed on its own: it parks the worktree as the next spare);
- prepare, fresh worktree: the same with `spare_worktrees=0` (a `worktree add` every time).
Once, at the start: a fresh full clone with checkout (the anchor of a first prepare), and the
first `prepare` of an empty workspace (partial clone + the blobs of one checkout).

    uv run python bench/prepare_floor.py [--mirror PATH] [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.services.workspace import GitWorkspace  # noqa: E402

MIRROR = Path("/work/.mirror/fastapi+fastapi/repo")
GOAL = 1.2
_ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_AUTHOR_NAME": "bench", "GIT_COMMITTER_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}


def git(*args: str, cwd: Path | None = None, stdin: str | None = None) -> str:
    res = subprocess.run(["git", *args], cwd=cwd, env=_ENV, input=stdin, capture_output=True, text=True,
                         timeout=900, check=False)
    if res.returncode != 0:
        raise SystemExit(f"git {' '.join(args[:3])} failed: {res.stderr.strip()[-500:]}")
    return res.stdout.strip()


def timed(fn: object, *args: object) -> float:
    started = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - started


def new_commit(remote: Path, branch: str, n: int) -> None:
    """One more commit on `branch`, changing one file (as a merged PR would)."""
    head = git("rev-parse", f"refs/heads/{branch}", cwd=remote)
    blob = git("hash-object", "-w", "--stdin", cwd=remote, stdin=f"bench round {n}\n")
    listing = git("ls-tree", head, cwd=remote).splitlines()
    entries = [line for line in listing if not line.endswith("\tBENCH_ROUND.txt")]
    entries.append(f"100644 blob {blob}\tBENCH_ROUND.txt")
    tree = git("mktree", cwd=remote, stdin="\n".join(entries) + "\n")
    commit = git("commit-tree", tree, "-p", head, "-m", f"bench round {n}", cwd=remote)
    git("update-ref", f"refs/heads/{branch}", commit, cwd=remote)


def floor_round(clone: Path, path: Path, branch: str) -> float:
    started = time.perf_counter()
    git("fetch", "--quiet", "origin", cwd=clone)
    git("worktree", "add", "--quiet", "-B", "bench", str(path), f"origin/{branch}", cwd=clone)
    elapsed = time.perf_counter() - started
    git("worktree", "remove", "--force", str(path), cwd=clone)
    return elapsed


def agent_edit(path: Path, n: int) -> None:
    """What a run leaves behind: a new file, an edited one, an ignored build artefact."""
    (path / f"agent_{n}.py").write_text("print('hi')\n")
    with (path / "README.md").open("a") as fh:
        fh.write("\nedited\n")
    (path / "__pycache__").mkdir(exist_ok=True)
    (path / "__pycache__" / "x.pyc").write_bytes(b"\0" * 64)


def med(values: list[float]) -> float:
    return statistics.median(values)


async def main(mirror: Path, rounds: int, fresh_clones: int, keep: bool) -> None:
    if not mirror.exists():
        raise SystemExit(f"{mirror} not found: fetch a repository first (e.g. the library's fetch tool, "
                         "github:fastapi/fastapi) or pass --mirror")
    scratch = Path(tempfile.mkdtemp(prefix="bench-prepare-", dir=ROOT / ".test-workspaces"
                                    if (ROOT / ".test-workspaces").is_dir() else ROOT))
    try:
        remote = scratch / "remote.git"
        git("clone", "--quiet", "--bare", str(mirror), str(remote))
        git("config", "uploadpack.allowFilter", "true", cwd=remote)
        branch = git("symbolic-ref", "--short", "HEAD", cwd=remote)
        url = f"file://{remote}"
        commits = git("rev-list", "--count", branch, cwd=remote)
        files = len(git("ls-tree", "-r", "--name-only", branch, cwd=remote).splitlines())
        print(f"repository: {mirror} ({commits} commits, {files} files on {branch}), served as {url}")
        print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f} at start (shared machine)")

        clones = [timed(git, "clone", "--quiet", "--no-tags", url, str(scratch / f"fresh-{i}"))
                  for i in range(fresh_clones)]
        for i in range(fresh_clones):
            shutil.rmtree(scratch / f"fresh-{i}")

        def settings(name: str) -> Settings:
            return Settings(WORKSPACE_DIR=str(scratch / name), REPO_URL=url, BASE_BRANCH=branch,  # type: ignore[call-arg]
                            _env_file=None)

        reuse = GitWorkspace(settings("ws-reuse"))
        fresh = GitWorkspace(settings("ws-fresh"), spare_worktrees=0)
        started = time.perf_counter()
        first = await reuse.prepare("BENCH-1")
        cold = time.perf_counter() - started
        await reuse.remove(first)
        started = time.perf_counter()
        full = GitWorkspace(settings("ws-full"), partial_clone=False, spare_worktrees=0)
        await full.remove(await full.prepare("BENCH-1"))
        cold_full = time.perf_counter() - started
        await fresh.remove(await fresh.prepare("BENCH-1"))
        floor_clone = scratch / "floor"
        git("clone", "--quiet", "--no-checkout", "--no-tags", url, str(floor_clone))

        times: dict[str, list[float]] = {"floor": [], "prepare": [], "remove": [], "prepare_fresh": [],
                                         "remove_fresh": []}
        for n in range(rounds):
            new_commit(remote, branch, n)
            order = ["floor", "reuse", "fresh"]
            order = order[n % 3:] + order[:n % 3]
            for which in order:
                if which == "floor":
                    times["floor"].append(floor_round(floor_clone, scratch / "floor-wt", branch))
                    continue
                ws, suffix = (reuse, "") if which == "reuse" else (fresh, "_fresh")
                t = time.perf_counter()
                wt = await ws.prepare(f"BENCH-{n + 2}")
                times[f"prepare{suffix}"].append(time.perf_counter() - t)
                agent_edit(wt.path, n)
                t = time.perf_counter()
                await ws.remove(wt)
                times[f"remove{suffix}"].append(time.perf_counter() - t)

        floor = med(times["floor"])
        print(f"\n{rounds} rounds, medians (load {os.getloadavg()[0]:.2f} at the end)")
        print(f"{'figure':48} {'median s':>9} {'× floor':>8}")
        print(f"{'floor: git fetch + git worktree add (anchor)':48} {floor:9.3f} {1.0:8.2f}")
        for key, label in (("prepare", "prepare (spare worktree reused)"),
                           ("prepare_fresh", "prepare, fresh worktree (spare_worktrees=0)")):
            value = med(times[key])
            verdict = "goal met" if value / floor <= GOAL else f"goal missed by {value / floor - GOAL:.2f}×"
            print(f"{label:48} {value:9.3f} {value / floor:8.2f}  (goal ≤ {GOAL}×: {verdict})")
        print(f"{'remove (parks the spare)':48} {med(times['remove']):9.3f}")
        print(f"{'remove, fresh mode (worktree remove)':48} {med(times['remove_fresh']):9.3f}")
        print(f"\nfirst prepare of an empty workspace: partial clone {cold:.2f} s, "
              f"full clone {cold_full:.2f} s; anchor: fresh full `git clone` with checkout "
              f"{med(clones):.2f} s (median of {fresh_clones})")
        sizes = {name: sum(f.stat().st_size for f in (scratch / name / "repo" / ".git" / "objects").rglob("*")
                           if f.is_file()) / 1e6 for name in ("ws-reuse", "ws-full")}
        print(f"shared clone objects: partial {sizes['ws-reuse']:.0f} MB, full {sizes['ws-full']:.0f} MB")
    finally:
        if keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, default=MIRROR)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--fresh-clones", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    ns = parser.parse_args()
    asyncio.run(main(ns.mirror, ns.rounds, ns.fresh_clones, ns.keep))
