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


# ----- hostile documents: output bounded, work bounded (no timing assertions) -----
from app.intake.adf import MAX_LIST_START  # noqa: E402
from app.intake.limits import TRUNCATED_MARKER  # noqa: E402

CAP = 2000


def _para(*texts: str) -> dict:
    return {"type": "paragraph", "content": [{"type": "text", "text": t} for t in texts]}


def test_100k_deep_nesting_is_bounded() -> None:
    node: dict = {"type": "text", "text": "deep"}
    for n in range(100_000):
        node = {"type": "blockquote" if n % 2 else "bulletList", "content": [node]}
    text = adf_to_text({"type": "doc", "content": [node]}, CAP)
    # the structure alone spends the work budget: bounded, and visibly cut
    assert len(text) <= CAP and text.endswith(TRUNCATED_MARKER)
    assert text.startswith("> - > - ")


def test_a_million_tiny_nodes_are_cut_with_the_marker() -> None:
    doc = {"type": "doc", "content": [_para(*["ab"] * 1_000_000)]}
    text = adf_to_text(doc, CAP)
    assert len(text) <= CAP and text.endswith(TRUNCATED_MARKER)
    assert text.startswith("abab")


def test_a_million_empty_nodes_render_nothing_and_say_so() -> None:
    text = adf_to_text({"type": "doc", "content": [{}] * 1_000_000}, CAP)
    assert text == TRUNCATED_MARKER


def test_deep_quote_around_many_lines_is_bounded() -> None:
    pair = [{"type": "text", "text": "x"}, {"type": "hardBreak"}]
    node: dict = {"type": "paragraph", "content": pair * 50_000}
    for _ in range(MAX_DEPTH - 2):
        node = {"type": "blockquote", "content": [node]}
    text = adf_to_text({"type": "doc", "content": [node]}, CAP)
    assert len(text) <= CAP and text.startswith("> > > ")


def test_wide_and_tall_table_is_bounded() -> None:
    cell = {"type": "tableCell", "content": [_para("c")]}
    doc = {"type": "doc", "content": [{"type": "table", "content": [
        {"type": "tableRow", "content": [cell] * 100_000},
        *[{"type": "tableRow", "content": [cell]}] * 100_000]}]}
    assert len(adf_to_text(doc, CAP)) <= CAP


def test_small_table_wider_than_the_column_cap_keeps_its_first_columns() -> None:
    cell = {"type": "tableCell", "content": [_para("c")]}
    row = {"type": "tableRow", "content": [cell] * 500}
    text = adf_to_text({"type": "doc", "content": [{"type": "table", "content": [row]}]}, 100_000)
    assert text.count("| c ") == 64


@pytest.mark.parametrize("order", [10**100, 10**4000])
def test_huge_order_is_clamped(order: int) -> None:
    item = {"type": "listItem", "content": [_para("a")]}
    ordered = {"type": "orderedList", "attrs": {"order": order}, "content": [item] * 3}
    doc = {"type": "doc", "content": [ordered]}
    assert adf_to_text(doc) == f"{MAX_LIST_START}. a\n{MAX_LIST_START + 1}. a\n{MAX_LIST_START + 2}. a"


def test_marks_bomb_is_bounded() -> None:
    marks = [{"type": "strong"}, {"type": "em"}] * 50_000 + [{"type": "code"}]
    doc = {"type": "doc", "content": [{"type": "paragraph", "content": [
        {"type": "text", "text": "w", "marks": marks}] * 20}]}
    text = adf_to_text(doc, CAP)
    assert text.startswith("***w******w***")  # marks past the first MAX_MARKS are not read (no code)
    assert len(text) <= CAP


def test_normal_document_under_the_cap_is_not_marked() -> None:
    assert TRUNCATED_MARKER not in adf_to_text(load_fixture("adf_rich"))


def test_link_whose_text_is_its_url_is_the_bare_url() -> None:
    url = "https://x.example/a"
    doc = {"type": "doc", "content": [{"type": "paragraph", "content": [
        {"type": "text", "text": url, "marks": [{"type": "link", "attrs": {"href": url}}]}]}]}
    assert adf_to_text(doc) == url


def test_the_jira_service_reads_adf_with_the_same_rule() -> None:
    from app.services.jira import adf as jira_adf

    assert jira_adf.adf_to_text is adf_to_text
    doc = load_fixture("adf_rich")
    assert jira_adf.adf_text(doc) == adf_to_text(doc)
