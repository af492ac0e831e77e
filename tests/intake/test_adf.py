"""ADF rendering: readable markdown-ish text for every common node, never raw JSON, never a crash."""

from __future__ import annotations

import json

import pytest

from app.intake.adf import MAX_DEPTH, adf_to_text, is_adf
from tests.intake.conftest import load_fixture


@pytest.fixture(scope="module")
def rich() -> str:
    return adf_to_text(load_fixture("adf_rich"))


class TestRichDocument:
    def test_heading_and_inline_marks(self, rich: str) -> None:
        assert rich.startswith("## Context\n\nThe **login** page shows a *stale* banner.")

    def test_mention_emoji_hard_break(self, rich: str) -> None:
        assert "Reported by @Jane Doe ⚠️\nSee " in rich

    def test_links_cards_dates_status(self, rich: str) -> None:
        assert "[the spec](https://example.com/spec)" in rich
        assert "<https://example.atlassian.net/browse/PROJ-7>" in rich
        assert "due 2024-06-13 [IN REVIEW]" in rich

    def test_nested_lists(self, rich: str) -> None:
        expected = "- remove the banner\n  1. delete `Banner.tsx`\n  2. update the tests\n- keep the footer"
        assert expected in rich

    def test_code_block_keeps_language_and_newlines(self, rich: str) -> None:
        assert "```python\ndef f():\n    return 1\n```" in rich

    def test_quote_panel_rule_tasks(self, rich: str) -> None:
        assert "> quoted words" in rich
        assert "> **Warning:** do not touch billing" in rich
        assert "\n---\n" in rich
        assert "- [x] reproduce\n- [ ] fix" in rich

    def test_table_with_escaped_pipe(self, rich: str) -> None:
        assert "| Browser | Result |\n| --- | --- |\n| Firefox | a \\| b |" in rich

    def test_media_and_expand(self, rich: str) -> None:
        assert "[screenshot.png]" in rich
        assert "**Logs**\n\ntrace here" in rich

    def test_no_json_leaks(self, rich: str) -> None:
        for token in ('"type"', "{", "attrs", "content"):
            assert token not in rich


def test_ordered_list_starts_at_order() -> None:
    doc = {"type": "doc", "content": [{"type": "orderedList", "attrs": {"order": 3}, "content": [
        {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "c"}]}]},
        {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "d"}]}]},
    ]}]}
    assert adf_to_text(doc) == "3. c\n4. d"


def test_code_block_containing_fence_uses_longer_fence() -> None:
    code = {"type": "codeBlock", "content": [{"type": "text", "text": "```x```"}]}
    doc = {"type": "doc", "content": [code]}
    assert adf_to_text(doc) == "````\n```x```\n````"


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"type": "doc"},
        {"type": "doc", "content": None},
        {"type": "doc", "content": "text"},
        {"type": "doc", "content": [1, None, "x", []]},
        {"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": 5}]}]},
        {"type": "doc", "content": [{"type": "heading", "attrs": {"level": "9"}, "content": "x"}]},
        {"type": "doc", "content": [{"type": "date", "attrs": {"timestamp": "9" * 5000}}]},
        {"type": "doc", "content": [{"type": "orderedList", "attrs": {"order": True}, "content": [{}]}]},
        {"type": "doc", "content": [{"type": "table", "content": [{"type": "tableRow", "content": []}]}]},
        {"type": "doc", "content": [{"type": "text", "text": "x", "marks": [{"type": "link"}, 3, None]}]},
    ],
)
def test_malformed_nodes_never_raise(doc: dict) -> None:
    assert isinstance(adf_to_text(doc), str)


def test_unknown_node_falls_back_to_children_text() -> None:
    doc = {"type": "doc", "content": [{"type": "fancyWidget2030", "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "inner words"}]}]}]}
    assert adf_to_text(doc) == "inner words"


def test_hostile_depth_is_flattened_without_recursion_error() -> None:
    node: dict = {"type": "text", "text": "deep"}
    for _ in range(5000):  # far past Python's recursion limit
        node = {"type": "blockquote", "content": [node]}
    text = adf_to_text({"type": "doc", "content": [node]})
    assert "deep" in text
    assert MAX_DEPTH < 5000


def test_deeply_nested_json_string_still_renders() -> None:
    # The same through json.loads, as the route sees it (json's own limit is ~1000 levels).
    opening = '{"type":"bulletList","content":[' * 300
    raw = '{"type":"doc","content":[' + opening + '{"type":"text","text":"x"}' + "]}" * 300 + "]}"
    assert "x" in adf_to_text(json.loads(raw))


def test_is_adf() -> None:
    assert is_adf({"type": "doc", "content": []})
    assert not is_adf({"version": 1})
    assert not is_adf("text")
