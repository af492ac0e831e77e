"""Review output parsing: tolerant of how models write, strict about a missing verdict."""

from __future__ import annotations

import pytest

from app.services.claude_code.review_parse import parse_review


@pytest.mark.parametrize(
    ("text", "has_issues", "findings"),
    [
        ("HAS_ISSUES: true\nFINDINGS:\n- a.py:1 bug", True, "- a.py:1 bug"),
        ("HAS_ISSUES: false\nFINDINGS:\nnone", False, ""),
        ("HAS_ISSUES: false\nFINDINGS:\n- None.", False, ""),
        ("HAS_ISSUES: false", False, ""),  # no findings block is fine when there are no issues
        (
            "I looked at it.\n\n**HAS_ISSUES:** true\n**FINDINGS:**\n- x.ts:3 null deref",
            True,
            "- x.ts:3 null deref",
        ),
        ("```\nHAS_ISSUES: yes\nFINDINGS:\n- b.py:2 typo\n```", True, "- b.py:2 typo"),
        ("has_issues = No\nfindings: nothing", False, "nothing"),
        ("HAS ISSUES: TRUE\nFINDINGS: a.py:9 leaks a file handle", True, "a.py:9 leaks a file handle"),
    ],
)
def test_accepts_what_models_write(text: str, has_issues: bool, findings: str) -> None:
    parsed = parse_review(text)
    assert parsed.ok, parsed.error
    assert parsed.has_issues is has_issues
    assert parsed.findings == findings


def test_the_last_verdict_wins_over_an_echoed_template() -> None:
    text = (
        "You asked for `HAS_ISSUES: true|false`.\nHAS_ISSUES: true\nFINDINGS:\n- old\n\n"
        "On reflection:\nHAS_ISSUES: false\nFINDINGS:\nnone"
    )
    parsed = parse_review(text)
    assert parsed.ok and parsed.has_issues is False and parsed.findings == ""


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no output"),
        (None, "no output"),
        ("Looks good to me!", "no `HAS_ISSUES"),
        ("HAS_ISSUES: maybe\nFINDINGS:\n- ?", "no `HAS_ISSUES"),
        ("HAS_ISSUES: true\nFINDINGS:\n", "no FINDINGS"),
        ("HAS_ISSUES: true", "no FINDINGS"),
    ],
)
def test_missing_or_malformed_output_is_a_reported_failure(text: str | None, error: str) -> None:
    parsed = parse_review(text)
    assert not parsed.ok
    assert parsed.error is not None and error in parsed.error
