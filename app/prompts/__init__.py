"""Prompt builders. Ticket text is untrusted: see `ticket_prompts`."""

from app.prompts.ticket_prompts import (
    fix_prompt,
    implementation_prompt,
    review_prompt,
    sanitize_untrusted,
)

__all__ = ["fix_prompt", "implementation_prompt", "review_prompt", "sanitize_untrusted"]
