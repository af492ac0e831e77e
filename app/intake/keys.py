"""Strict Jira issue-key validation.

A key reaches branch names, directory names and git commands, so only one exact shape is let in:
`^[A-Z][A-Z0-9_]+-[1-9][0-9]*\\Z`, ASCII only, matched with `fullmatch` (so `PROJ-1\\n` fails, unlike
`$`). Nothing is normalised: `proj-12` is refused, not upper-cased, so the key Jira sent and the key we
work on are always the same string.
"""

from __future__ import annotations

import re
from typing import TypeGuard

from app.errors import BadRequest

# re.ASCII keeps the classes ASCII-only whatever flags change later; [A-Z] and [0-9] already are.
KEY_RE = re.compile(r"[A-Z][A-Z0-9_]+-[1-9][0-9]*", re.ASCII)
# Jira caps project keys at 255 characters; branch and directory names (`ticket-<key>`) must stay
# well under filesystem limits (255 bytes), so anything longer is refused as implausible.
MAX_KEY_LEN = 100


def is_valid_key(value: object) -> TypeGuard[str]:
    """True when `value` is a str in the exact key shape (and not absurdly long)."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_KEY_LEN
        and value.isascii()
        and KEY_RE.fullmatch(value) is not None
    )


def validate_key(value: object) -> str:
    """Return `value` unchanged when it is a valid key; else raise BadRequest(code="invalid_key").

    The detail shows the offending value via `repr` (so control characters are visible and never
    reach a log line raw), shortened to keep error bodies small.
    """
    if is_valid_key(value):
        return value
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise BadRequest(
        f"invalid issue key {shown}: expected PROJECT-123 (upper-case ASCII project key, a dash, "
        "a number without leading zero)",
        code="invalid_key",
    )
