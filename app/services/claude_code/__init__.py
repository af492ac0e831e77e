"""Claude Code sessions for a ticket: the real SDK client (`SdkClaudeCode`) or the offline scripted
one (`ScriptedClaudeCode`), both implementing `ClaudeCode` (base.py)."""

from app.services.claude_code.base import AgentRequest, AgentRun, ClaudeCode, ReviewResult
from app.services.claude_code.client import SdkClaudeCode
from app.services.claude_code.factory import build_claude_code
from app.services.claude_code.review_parse import ParsedReview, parse_review
from app.services.claude_code.scripted import MockCall, ScriptedClaudeCode

__all__ = [
    "AgentRequest",
    "AgentRun",
    "ClaudeCode",
    "MockCall",
    "ParsedReview",
    "ReviewResult",
    "ScriptedClaudeCode",
    "SdkClaudeCode",
    "build_claude_code",
    "parse_review",
]
