"""Size limits on ticket text: the one truncation rule, applied before anything reaches the prompt
or the database.

Ticket text is untrusted and arrives in bodies of up to MAX_BODY_BYTES. Every field that leaves
intake is capped here, in one place:

- `summary`: at most MAX_SUMMARY_CHARS (500) characters;
- `description`: at most `MAX_DESCRIPTION_CHARS` (setting, default 20000);
- `labels`: the first MAX_LABELS (50), each at most MAX_LABEL_CHARS (255; Jira's own limit).

The rule (`clip`): text longer than its limit keeps its head and ends with the visible marker
`[... truncated]`, the whole result never longer than the limit. Text that was cut earlier (the ADF
renderer stops at its output budget) gets the marker too, so the agent always sees that something
is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

TRUNCATED_MARKER = "[... truncated]"
MAX_SUMMARY_CHARS = 500
MAX_LABELS = 50
MAX_LABEL_CHARS = 255
DEFAULT_MAX_DESCRIPTION_CHARS = 20_000


def clip(text: str, limit: int, *, cut: bool = False) -> str:
    """`text` if it fits in `limit` characters (and was not `cut` already), else its head followed by
    TRUNCATED_MARKER, at most `limit` characters in all."""
    if len(text) <= limit and not cut:
        return text
    marker = "\n" + TRUNCATED_MARKER if "\n" in text[:limit] else " " + TRUNCATED_MARKER
    if limit <= len(marker):
        return TRUNCATED_MARKER[:limit]
    head = text[: limit - len(marker)].rstrip()
    return head + marker if head else TRUNCATED_MARKER


@dataclass(frozen=True)
class FieldLimits:
    """The caps for one Ticket (`from_settings` reads MAX_DESCRIPTION_CHARS)."""

    max_summary_chars: int = MAX_SUMMARY_CHARS
    max_description_chars: int = DEFAULT_MAX_DESCRIPTION_CHARS
    max_labels: int = MAX_LABELS
    max_label_chars: int = MAX_LABEL_CHARS

    @classmethod
    def from_settings(cls, settings: object) -> FieldLimits:
        chars = getattr(settings, "max_description_chars", DEFAULT_MAX_DESCRIPTION_CHARS)
        return cls(max_description_chars=chars)

    def summary(self, text: str) -> str:
        return clip(text, self.max_summary_chars)

    def description(self, text: str, *, cut: bool = False) -> str:
        return clip(text, self.max_description_chars, cut=cut)

    def labels(self, labels: list[str]) -> list[str]:
        return [clip(label, self.max_label_chars) for label in labels[: self.max_labels]]
