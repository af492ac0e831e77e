"""What a `review_fix` follow-up gathers: every comment on the PR the service has not answered yet,
from people allowed to steer (steering.py), as threads (`followup_review`).

The step keeps its recorded name `FollowupSteps.followup_review` (see step_base.py).
"""

from __future__ import annotations

from dbos import DBOS

from app.errors import AutoCodeError
from app.followups.models import FollowupContext, Materials, Thread
from app.followups.steering import steer_refusal
from app.followups.step_base import FollowupStepBase
from app.services.runner.errors import StepFailed
from app.services.runner.models import RunRef


class ReviewSteps(FollowupStepBase):
    @DBOS.step(name="FollowupSteps.followup_review")
    async def followup_review(self, run: RunRef, ctx: FollowupContext) -> Materials:
        """Every comment the service has not answered yet, from people allowed to steer, with its
        file, line, diff hunk and whole thread."""
        fu, d = self.fu, self.d
        api = fu.activity(ctx.repository)  # the PR's own repository's client and account
        assert api is not None  # begin skips otherwise
        me = (await fu.service_login(ctx.repository) or "").lower()
        async with self.row(run, "followup", begin=False, end=False) as row:
            try:
                comments = await api.review_comments(ctx.number)
                talk = await api.issue_comments(ctx.number)
            except AutoCodeError as exc:
                raise StepFailed("followup", exc.detail) from None
            threads: list[Thread] = []
            refused: list[str] = []
            permissions: dict[str, str] = {}  # one permission lookup per author in this step
            roots = [c for c in comments if c.in_reply_to is None]
            for root in roots:
                thread = [root, *[c for c in comments if c.in_reply_to == root.id]]
                last = thread[-1]
                if last.author.login.lower() == me:
                    continue  # answered (the service's reply is the thread's last word)
                why = await steer_refusal(last.author, last.body, d.settings, api, me, permissions)
                if why:
                    refused.append(why)
                    continue
                threads.append(
                    Thread(
                        comment_id=last.id,
                        reply_to=root.id,
                        path=root.path,
                        line=root.line,
                        diff_hunk=d.scanner.redact(root.diff_hunk),
                        messages=tuple((c.author.login, d.scanner.redact(c.body)) for c in thread),
                    )
                )
            mine = [i for i, c in enumerate(talk) if c.author.login.lower() == me]
            for c in talk[(mine[-1] + 1) if mine else 0 :]:
                why = await steer_refusal(c.author, c.body, d.settings, api, me, permissions)
                if why:
                    refused.append(why)
                    continue
                threads.append(
                    Thread(
                        comment_id=c.id, reply_to=None, messages=((c.author.login, d.scanner.redact(c.body)),)
                    )
                )
            nothing = None if threads else "no unanswered comment from anyone allowed to steer"
            row.detail = {
                "threads": [t.comment_id for t in threads],
                "ignored": refused,
                **({"nothing": nothing} if nothing else {}),
            }
        return Materials(kind="review_fix", threads=tuple(threads), nothing=nothing)
