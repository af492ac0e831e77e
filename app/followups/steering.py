"""Who may steer a PR the service opened (issue 11 item 1), for webhook intake and for the
follow-up run that reads the comments itself:

- never the service's own account (`GITHUB_SERVICE_LOGIN`): its replies must not start rounds;
- bots (`type: Bot` or a `[bot]` login) only when listed in `GITHUB_STEERING_USERS`;
- people listed in `GITHUB_STEERING_USERS`, or collaborators with write access (admin, maintain,
  write: GitHub's `GET /repos/{o}/{r}/collaborators/{user}/permission`);
- with `GITHUB_REQUIRE_MENTION`, only a text that mentions `@<service login>`.

`steer_refusal` returns None when the author may steer, else the reason (the webhook's `ignored`
answer, the run's log). A permission lookup that fails counts as no permission (closed by default).
"""

from __future__ import annotations

import logging
import re

from app.config import Settings
from app.errors import AutoCodeError
from app.services.github.activity_base import Author, PullActivity

log = logging.getLogger(__name__)

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


async def steer_refusal(
    author: Author,
    body: str,
    settings: Settings,
    activity: PullActivity | None,
    service_login: str | None,
    permissions: dict[str, str] | None = None,
) -> str | None:
    """`permissions`, when given, keeps the logins already looked up (one GET per author while a
    step reads a PR's comments, not one per comment); a failed lookup is not kept."""
    login = author.login
    if service_login and _same(login, service_login):
        return f"{login} is the service's own account"
    listed = any(_same(login, allowed) for allowed in settings.github_steering_users)
    if author.is_bot and not listed:
        return f"{login} is a bot that is not in GITHUB_STEERING_USERS"
    if settings.github_require_mention and service_login:
        if not re.search(rf"(?<![\w-])@{re.escape(service_login)}(?![\w-])", body, re.IGNORECASE):
            return f"the text does not mention @{service_login} (GITHUB_REQUIRE_MENTION)"
    if listed:
        return None
    if activity is None:
        return f"{login} is not in GITHUB_STEERING_USERS (no GitHub API to read permissions)"
    known = permissions.get(login.lower()) if permissions is not None else None
    if known is not None:
        permission: str = known
    else:
        try:
            permission = await activity.permission(login)
        except AutoCodeError as exc:
            log.warning("github_permission_lookup_failed", extra={"login": login, "detail": exc.detail})
            return f"{login}'s permission could not be read ({exc.detail})"
        if permissions is not None:
            permissions[login.lower()] = permission
    if permission not in WRITE_PERMISSIONS:
        return f"{login} has {permission} access, not write"
    return None
