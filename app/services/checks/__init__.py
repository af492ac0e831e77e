"""Checks: the target repo's setup / lint / test commands, run in a worktree with timeouts."""

from app.services.checks.base import CheckName, CheckResult, Checks
from app.services.checks.client import CommandChecks
from app.services.checks.factory import build_checks

__all__ = [
    "CheckName",
    "CheckResult",
    "Checks",
    "CommandChecks",
    "build_checks",
]
