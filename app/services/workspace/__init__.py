"""Workspace: git on the service's side (shared clone, one worktree per ticket, commit, push)."""

from app.services.workspace.base import Workspace, Worktree
from app.services.workspace.client import GitWorkspace
from app.services.workspace.factory import build_workspace

__all__ = ["GitWorkspace", "Workspace", "Worktree", "build_workspace"]
