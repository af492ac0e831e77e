"""Reading a file of the base branch (`Workspace.read_base_file`, e.g. the repository's
`.auto-code.toml`) from the shared clone's objects as the last fetch saw them - never from a
worktree or a ticket's branch, which the agent writes."""

from __future__ import annotations

from app.errors import WorkspaceError
from app.services.workspace.gitrun import RepoGit


async def read_base_file(git: RepoGit, base_branch: str, path: str, max_bytes: int) -> tuple[str | None, str]:
    """The file at `path` on the base branch as the last fetch saw it (`refs/remotes/origin/
    <BASE_BRANCH>`), read from the shared clone's objects - never from a worktree or a ticket's
    branch, which the agent writes - and the commit it was read from."""
    if path.startswith(("-", "/")) or ".." in path.split("/"):
        raise WorkspaceError(f"invalid base file path {path[:60]!r}")
    async with git.repo_lock():
        res = await git.clone_git("rev-parse", "--verify", "--quiet",
                                  f"refs/remotes/origin/{base_branch}^{{commit}}", check=False)
        if not res.ok:
            raise WorkspaceError(f"base branch {base_branch!r} not found on origin",
                                 exit_code=res.exit_code)
        base_sha = res.output.strip().splitlines()[-1]
        listed = await git.clone_git("ls-tree", "-z", base_sha, "--", path)
        entry = listed.output.split("\0")[0]
        meta, _, name = entry.partition("\t")
        parts = meta.split()
        if not entry or name != path or len(parts) != 3:
            return None, base_sha
        mode, kind, sha = parts
        if kind != "blob" or mode not in ("100644", "100755"):  # a link or a directory is no config
            raise WorkspaceError(f"{path} on the base branch is not a regular file ({mode} {kind})")
        res = await git.clone_git("cat-file", "-s", sha)
        if int(res.output.strip() or 0) > max_bytes:
            raise WorkspaceError(f"{path} on the base branch is over {max_bytes} bytes")
        blob = await git.clone_git("cat-file", "blob", sha)
    return blob.output, base_sha
