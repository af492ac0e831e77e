"""Atlassian Document Format (ADF) → readable markdown-ish text.

Jira Cloud's REST v3 and some webhooks send `description` as an ADF tree
(`{"type": "doc", "version": 1, "content": [...]}`). The agent must read the ticket as text, never as
raw JSON, so this renders paragraphs, headings, lists (bullet, ordered, task, decision), code blocks,
quotes, panels, rules, links, mentions, emoji, dates, status lozenges, hard breaks, media
placeholders and tables as markdown.

This is the project's one ADF-to-text rule: `app.services.jira.adf.adf_text` (comments read back
from Jira) is this function.

Contract: `adf_to_text` never raises on any JSON value — the tree is untrusted input. Malformed nodes
are skipped, unknown node types fall back to their children's text, and nesting deeper than
`MAX_DEPTH` is flattened to plain text without recursion (so a hostile 100k-level tree cannot
exhaust the stack). The work is linear and bounded whatever the input:
- a work budget: every node visited and every character produced at every level (indentation and
  list markers included) is charged; once `WORK_FACTOR * max_chars` is spent the renderer stops
  visiting nodes, so a million tiny nodes, a deep quote around many lines or a huge table cost at
  most a constant times `max_chars`;
- the result is cut by the one truncation rule (`app.intake.limits.clip`, visible
  `[... truncated]` marker) to `max_chars`;
- ordered-list numbering starts at most at MAX_LIST_START, tables keep MAX_TABLE_COLUMNS columns,
  a text node's first MAX_MARKS marks count.
"""

from __future__ import annotations

import re

from app.intake.adf_nodes import MAX_MARKS
from app.intake.adf_render import MAX_DEPTH, MAX_LIST_START, MAX_TABLE_COLUMNS, NODE_COST, Renderer
from app.intake.limits import DEFAULT_MAX_DESCRIPTION_CHARS, clip

WORK_FACTOR = 10  # work budget = WORK_FACTOR * max_chars + WORK_MIN; real documents spend ~3-5x
WORK_MIN = 10_000

__all__ = [
    "MAX_DEPTH",
    "MAX_LIST_START",
    "MAX_MARKS",
    "MAX_TABLE_COLUMNS",
    "NODE_COST",
    "WORK_FACTOR",
    "WORK_MIN",
    "adf_to_text",
    "is_adf",
]


def is_adf(value: object) -> bool:
    """True for a dict that looks like an ADF node (has a string `type`)."""
    return isinstance(value, dict) and isinstance(value.get("type"), str)


def adf_to_text(doc: object, max_chars: int = DEFAULT_MAX_DESCRIPTION_CHARS) -> str:
    """Render an ADF document (or any ADF node) as markdown-ish text of at most `max_chars`
    characters; '' when nothing renders."""
    if not isinstance(doc, dict):
        return ""
    r = Renderer(WORK_FACTOR * max_chars + WORK_MIN)
    text = r.blocks(doc.get("content"), 0) if doc.get("type") == "doc" else r.block(doc, 0)
    lines = [line.rstrip() for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return clip(text, max_chars, cut=r.cut)
