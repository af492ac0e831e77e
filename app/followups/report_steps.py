"""What a follow-up says, on the PR and the ticket: the round's replies or CI comment, with the
round counted (`followup_answer`); a failed round's note (`followup_failed_note`); the end of the
loop when a limit is reached (`followup_stop`). Every posted text goes through `_checked`.

The steps keep their recorded names `FollowupSteps.<method>` (see step_base.py).
"""

from __future__ import annotations

from typing import Any

from dbos import DBOS

from app.errors import AutoCodeError
from app.followups.models import FollowupContext, FollowupResult, Materials
from app.followups.step_base import FollowupStepBase
from app.services.runner.models import RunRef


class ReportSteps(FollowupStepBase):
    @DBOS.step(name="FollowupSteps.followup_answer")
    async def followup_answer(
        self, run: RunRef, ctx: FollowupContext, m: Materials, result: FollowupResult, sha: str | None
    ) -> None:
        """Tell the PR what this round did: a reply under each addressed review comment (the agent's
        answer, or what changed), one comment for CI; and count the round."""
        fu = self.fu
        api = fu.activity(ctx.repository)  # the PR's own repository's client
        assert api is not None  # begin skips otherwise
        pushed = f" in {sha[:12]}" if sha else ""
        posted: list[str] = []
        async with self.row(run, "reply") as row:
            try:
                if m.kind == "ci_fix":
                    text = (
                        f"auto-code pushed a fix{pushed} for the failing CI ({m.signature}).\n\n"
                        f"{result.summary[:3000]}"
                    )
                    await api.comment(ctx.number, self._checked(text))
                    posted.append("comment")
                else:
                    said = dict(result.replies)
                    for t in m.threads:
                        answer = said.get(t.comment_id) or (
                            f"Addressed{pushed}: {result.summary[:1500]}"
                            if result.has_changes
                            else result.summary[:1500]
                        )
                        text = self._checked(answer)
                        if t.reply_to is not None:
                            await api.reply(ctx.number, t.reply_to, text)
                        else:
                            await api.comment(ctx.number, f"> {t.messages[0][1][:200]}\n\n{text}")
                        posted.append(str(t.comment_id))
            except AutoCodeError as exc:
                row.status, row.detail = "failed", {"error": exc.detail, "posted": posted}
                return
            finally:
                kind: Any = "ci" if m.kind == "ci_fix" else "review"
                await fu.store.run(
                    fu.store.add_round,
                    ctx.repository,
                    ctx.number,
                    kind=kind,
                    signature=m.signature or None,
                    cost_usd=result.cost_usd,
                )
            row.detail = {"posted": posted, "sha": sha}

    def _checked(self, text: str) -> str:
        """What the service posts on GitHub: redacted, and refused if a secret still shows."""
        text = self.d.scanner.redact(text)
        self.outbound_check("reply", "the PR comment", [("its text", text)], "nothing was posted")
        return text

    @DBOS.step(name="FollowupSteps.followup_failed_note")
    async def followup_failed_note(self, run: RunRef, ctx: FollowupContext, reason: str) -> None:
        """A round that failed (a gate, the agent, git) pushed nothing: say so on the PR, once per run.
        Best effort: a failure to comment is logged, the run's outcome stands."""
        api = self.fu.activity(ctx.repository)
        if api is None:
            return
        what = "the failing CI" if ctx.kind == "ci_fix" else "the review comments"
        text = f"auto-code could not address {what} in this round (run {run.run_id}): {reason[:1500]}"
        try:
            await api.comment(ctx.number, self._checked(text))
        except AutoCodeError as exc:
            await self.say(run, f"commenting on the PR failed: {exc.detail}", "warning", step="reply")

    @DBOS.step(name="FollowupSteps.followup_stop")
    async def followup_stop(self, run: RunRef, ctx: FollowupContext, limit: str, left: str) -> None:
        """A limit ended the loop: say which and what is left, on the PR and on the ticket; no more
        follow-ups for this PR (until someone re-opens the loop by hand)."""
        fu, d = self.fu, self.d
        text = (
            f"auto-code stopped following up on this pull request: {limit}. What is left: {left}. "
            "A person needs to take it from here."
        )
        problems: list[str] = []
        async with self.row(run, "reply") as row:
            await fu.store.run(fu.store.stop, ctx.repository, ctx.number, limit)
            if (api := fu.activity(ctx.repository)) is not None:
                try:
                    await api.comment(ctx.number, self._checked(text))
                except AutoCodeError as exc:
                    problems.append(exc.detail)
            if d.jira is not None:
                try:
                    await d.jira.comment(
                        run.key, d.scanner.redact(f"{text} (PR #{ctx.number}, run {run.run_id})")
                    )
                except Exception as exc:  # best effort, like every Jira report
                    problems.append(str(exc))
            row.detail = {"limit": limit, "left": left, **({"problems": problems} if problems else {})}
