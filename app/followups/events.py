"""GitHub webhook payloads → what, if anything, the service does about them.

`classify(event, payload)` reads only the fields it needs from GitHub's documented shapes (octokit/
webhooks' schemas) and returns either an `Ignored(reason)` or a `PrEvent`: a CI failure, a review
or comment (with its author and text, for the steering rules), or the PR's close. Which PR is the
service's is decided later against the PRs it recorded (intake.py); here only the branch prefix is
checked. Nothing here trusts the payload's text: bodies are carried, never interpreted.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from app.services.github.activity_base import Author

BRANCH_PREFIX = "ticket/"  # the workspace's branch names: ticket/<key-lowercase>
# Check conclusions that mean "this commit's CI is red" (GitHub: check run / suite `conclusion`).
FAILING = frozenset({"failure", "timed_out", "startup_failure", "action_required"})
Action = Literal["ci", "review", "closed"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Ignored(_Frozen):
    reason: str


class PrEvent(_Frozen):
    """Something about one PR. `trigger` names it for dedup (`ci:<sha>`, `review:<id>`,
    `comment:<id>`); `author`/`body` are set for reviews and comments."""

    action: Action
    number: int
    branch: str
    head_sha: str = ""
    trigger: str
    author: Author | None = None
    body: str = ""
    merged: bool = False


def classify(event: str, payload: dict[str, Any]) -> list[PrEvent] | Ignored:
    """The PR events in one delivery (a check suite may name several PRs), or why it is ignored."""
    action = payload.get("action")
    if event == "ping":
        return Ignored(reason="ping: the webhook is wired")
    if event in ("check_suite", "check_run", "workflow_run"):
        return _ci(event, action, payload.get(event))
    if event == "pull_request_review":
        return _review(action, payload)
    if event == "pull_request_review_comment":
        return _review_comment(action, payload)
    if event == "issue_comment":
        return _issue_comment(action, payload)
    if event == "pull_request":
        return _closed(action, payload)
    return Ignored(reason=f"event {event!r} is not one auto-code acts on")


def _ci(event: str, action: object, obj: object) -> list[PrEvent] | Ignored:
    if action != "completed":
        return Ignored(reason=f"{event} {action}: only completed CI is acted on")
    if not isinstance(obj, dict):
        return Ignored(reason=f"{event} without its {event} object")
    conclusion = obj.get("conclusion")
    if conclusion not in FAILING:
        return Ignored(reason=f"{event} concluded {conclusion}: nothing to fix")
    sha = str(obj.get("head_sha") or "")
    prs = obj.get("pull_requests") or _obj(obj.get("check_suite")).get("pull_requests") or []
    out = []
    for pr in prs if isinstance(prs, list) else []:
        number, branch = _number(pr), str(_obj(_obj(pr).get("head")).get("ref") or "")
        if number is not None and branch.startswith(BRANCH_PREFIX):
            out.append(PrEvent(action="ci", number=number, branch=branch, head_sha=sha, trigger=f"ci:{sha}"))
    if not out:
        return Ignored(reason=f"{event} failed on no pull request of an auto-code branch")
    return out


def _pr(payload: dict[str, Any]) -> tuple[int, str, str] | Ignored:
    pr = payload.get("pull_request")
    if not isinstance(pr, dict) or _number(pr) is None:
        return Ignored(reason="no pull_request in the payload")
    head = _obj(pr.get("head"))
    branch = str(head.get("ref") or "")
    if not branch.startswith(BRANCH_PREFIX):
        return Ignored(reason=f"pull request #{pr['number']} is not on an auto-code branch")
    return int(pr["number"]), branch, str(head.get("sha") or "")


def author_of(obj: dict[str, Any]) -> Author:
    """The `user` of a payload object (a review, a comment) as an Author; "ghost" when absent."""
    user = _obj(obj.get("user"))
    return Author(login=str(user.get("login") or "ghost"), type=str(user.get("type") or "User"))


def _review(action: object, payload: dict[str, Any]) -> list[PrEvent] | Ignored:
    if action != "submitted":
        return Ignored(reason=f"pull_request_review {action}: only submitted reviews are acted on")
    review = payload.get("review")
    pr = _pr(payload)
    if isinstance(pr, Ignored):
        return pr
    if not isinstance(review, dict) or not isinstance(review.get("id"), int):
        return Ignored(reason="pull_request_review without its review")
    state, body = str(review.get("state") or "").lower(), str(review.get("body") or "")
    if state == "approved":
        return Ignored(reason="review approved: nothing to change")
    if state == "commented" and not body.strip():
        return Ignored(reason="review comment without a body (its inline comments arrive on their own)")
    if state not in ("changes_requested", "commented"):
        return Ignored(reason=f"review {state}: nothing to change")
    number, branch, sha = pr
    return [
        PrEvent(
            action="review",
            number=number,
            branch=branch,
            head_sha=sha,
            trigger=f"review:{review['id']}",
            author=author_of(review),
            body=body,
        )
    ]


def _review_comment(action: object, payload: dict[str, Any]) -> list[PrEvent] | Ignored:
    if action != "created":
        return Ignored(reason=f"pull_request_review_comment {action}: only new comments are acted on")
    comment = payload.get("comment")
    pr = _pr(payload)
    if isinstance(pr, Ignored):
        return pr
    if not isinstance(comment, dict) or not isinstance(comment.get("id"), int):
        return Ignored(reason="pull_request_review_comment without its comment")
    number, branch, sha = pr
    # The comments of one review share its id: a review with three comments is one trigger.
    review_id = comment.get("pull_request_review_id")
    trigger = f"review:{review_id}" if isinstance(review_id, int) else f"comment:{comment['id']}"
    return [
        PrEvent(
            action="review",
            number=number,
            branch=branch,
            head_sha=sha,
            trigger=trigger,
            author=author_of(comment),
            body=str(comment.get("body") or ""),
        )
    ]


def _issue_comment(action: object, payload: dict[str, Any]) -> list[PrEvent] | Ignored:
    if action != "created":
        return Ignored(reason=f"issue_comment {action}: only new comments are acted on")
    issue, comment = payload.get("issue"), payload.get("comment")
    if not isinstance(issue, dict) or not isinstance(issue.get("pull_request"), dict):
        return Ignored(reason="a comment on an issue, not on a pull request")
    if _number(issue) is None or not isinstance(comment, dict) or not isinstance(comment.get("id"), int):
        return Ignored(reason="issue_comment without its issue number or comment")
    # The issue payload has no head branch: intake looks the PR up among the service's own.
    return [
        PrEvent(
            action="review",
            number=int(issue["number"]),
            branch="",
            trigger=f"comment:{comment['id']}",
            author=author_of(comment),
            body=str(comment.get("body") or ""),
        )
    ]


def _closed(action: object, payload: dict[str, Any]) -> list[PrEvent] | Ignored:
    if action != "closed":
        return Ignored(reason=f"pull_request {action}: only a close is acted on")
    pr = _pr(payload)
    if isinstance(pr, Ignored):
        return pr
    number, branch, sha = pr
    merged = _obj(payload.get("pull_request")).get("merged") is True
    return [
        PrEvent(action="closed", number=number, branch=branch, head_sha=sha, trigger="closed", merged=merged)
    ]


def _obj(value: object) -> dict[str, Any]:
    """`value` when it is a JSON object, else {} (a hostile payload's field may be anything)."""
    return value if isinstance(value, dict) else {}


def _number(obj: object) -> int | None:
    if isinstance(obj, dict):
        number = obj.get("number")
        if isinstance(number, int) and not isinstance(number, bool) and number > 0:
            return number
    return None
