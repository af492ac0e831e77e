"""Parse a review session's final text: `HAS_ISSUES: true|false` then a `FINDINGS:` block.

Tolerant of what models actually write: markdown emphasis (`**HAS_ISSUES:** true`), code fences,
`yes/no` for `true/false`, `=` for `:`, extra prose before the verdict. When the verdict appears more
than once (the model echoed the instructions), the LAST one counts. Missing or contradictory output
is a failed review (`ParsedReview.error`), never an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERDICT_RE = re.compile(
    r"^[\s>*_`#-]*HAS[_ ]ISSUES[\s*_`]*[:=][\s*_`]*(true|false|yes|no)\b", re.IGNORECASE | re.MULTILINE
)
_FINDINGS_RE = re.compile(r"^[\s>*_`#-]*FINDINGS[\s*_`]*:[\s*_`]*", re.IGNORECASE | re.MULTILINE)
_NONE_RE = re.compile(r"^[\s\-*]*(none|n/a|no (issues|findings|problems)( found)?)\.?$", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedReview:
    has_issues: bool
    findings: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def parse_review(text: str | None) -> ParsedReview:
    """Read the verdict and the findings from `text` (see the module docstring)."""
    text = (text or "").strip()
    if not text:
        return ParsedReview(False, "", "review produced no output")
    verdicts = list(_VERDICT_RE.finditer(text))
    if not verdicts:
        return ParsedReview(False, "", "review output has no `HAS_ISSUES: true|false` line")
    last = verdicts[-1]
    has_issues = last.group(1).lower() in ("true", "yes")
    findings_match = None
    for m in _FINDINGS_RE.finditer(text):
        if m.start() > last.start():
            findings_match = m
            break
    findings = _clean(text[findings_match.end():]) if findings_match else ""
    if has_issues and not findings:
        return ParsedReview(True, "", "review says HAS_ISSUES: true but gives no FINDINGS")
    if not has_issues and _NONE_RE.match(findings):
        findings = ""
    return ParsedReview(has_issues, findings)


def _clean(block: str) -> str:
    lines = [line.rstrip() for line in block.strip().splitlines()]
    lines = [line for line in lines if not line.strip().startswith("```")]
    return "\n".join(lines).strip()
