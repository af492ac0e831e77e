"""The pull request's title and body: ticket link, what was done, review findings, gates, cost."""

from __future__ import annotations

from collections.abc import Sequence

from app.models import Ticket
from app.prompts.ticket_prompts import sanitize_untrusted
from app.services.runner.models import GateResult


def one_line(text: str, limit: int = 72) -> str:
    """First line of untrusted text, cleaned and shortened: for commit subjects and PR titles."""
    line = sanitize_untrusted(text).strip().splitlines()[0] if text.strip() else ""
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def commit_message(ticket: Ticket) -> str:
    return f"{ticket.key}: {one_line(ticket.summary) or 'changes'}"


def pr_title(ticket: Ticket) -> str:
    return f"{ticket.key}: {one_line(ticket.summary, 200) or 'changes'}"


def render_pr_body(
    ticket: Ticket,
    *,
    summary: str,
    diff_summary: str,
    gates: Sequence[GateResult],
    review_findings: str | None,
    turns: int,
    cost_usd: float,
    run_id: str,
    repository: str | None = None,
) -> str:
    """Markdown body. The agent's summary and findings are model output (they may quote the
    ticket), so they go inside quote blocks, cleaned of hidden characters; no secret is in scope."""
    link = f"[{ticket.key}]({ticket.url})" if ticket.url else ticket.key
    lines = [f"Resolves {link}: {one_line(ticket.summary, 200)}", "", "## What was done", ""]
    lines += _quote(summary or "(the agent gave no summary)")
    if diff_summary.strip():
        lines += ["", "```", diff_summary.strip("\n")[-3000:], "```"]
    lines += ["", "## Gates", "", "| gate | result | fix rounds |", "|---|---|---|"]
    if not gates:
        lines.append("| (none enabled) | | |")
    for g in gates:
        lines.append(f"| {g.gate} | {g.outcome} | {g.fix_rounds} |")
    if review_findings:
        lines += ["", "## Review findings", ""]
        lines += _quote(review_findings)
    lines += [
        "",
        f"Agent turns: {turns} · cost: ${cost_usd:.4f} · run `{run_id}`"
        + (f" · repository `{repository}`" if repository else ""),
        "",
        "_Opened by auto-code. The code was written by Claude Code from the ticket text; review it as "
        "you would any contribution._",
    ]
    return "\n".join(lines)


def _quote(text: str) -> list[str]:
    clean = sanitize_untrusted(text)[-6000:]
    return ["> " + line for line in clean.splitlines()] or ["> "]
