"""The dashboard's session cookie and its CSRF token, both stateless.

A session is `{sid, auth, exp}` signed with HMAC-SHA256. The key is derived from OPERATOR_TOKEN
(HMAC of a fixed label), so every host sharing the token accepts the same cookies, nothing new has
to be stored or configured, and rotating the token signs everyone out. The cookie never carries
the token itself. Without OPERATOR_TOKEN (development only: production requires it) the key is
random per process, so a restart signs everyone out.

Before sign-in a browser holds an anonymous session (`auth=False`): it exists only so the sign-in
form has a CSRF token too. Signing in issues a new session id (no session fixation).

The CSRF token is HMAC(key, "csrf" + sid): a synchronizer token that needs no server-side table;
it is only valid with the session it was made for, and an attacker's page can read neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE_NAME = "ac_session"
COOKIE_PATH = "/ui"  # the cookie goes to the dashboard only, never to the Bearer-token API
_KEY_LABEL = b"auto-code dashboard session key v1"
_ANON_TTL_SEC = 3600.0  # a sign-in form left open for an hour gets a fresh one


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    auth: bool
    exp: float  # epoch seconds


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and checks session cookies and CSRF tokens with one key."""

    def __init__(self, key: bytes, session_hours: float) -> None:
        self._key = key
        self.ttl_sec = session_hours * 3600.0

    @classmethod
    def from_operator_token(cls, token: str | None, session_hours: float) -> SessionSigner:
        """The key is HMAC(token, label); with no token, a random key (one process only)."""
        base = token.encode() if token is not None else secrets.token_bytes(32)
        return cls(hmac.new(base, _KEY_LABEL, hashlib.sha256).digest(), session_hours)

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, b"session\0" + body.encode("ascii"), hashlib.sha256).digest())

    def issue(self, *, auth: bool, now: float | None = None) -> tuple[Session, str]:
        """A new session (new id) and its cookie value."""
        now = time.time() if now is None else now
        session = Session(sid=secrets.token_urlsafe(18), auth=auth,
                          exp=now + (self.ttl_sec if auth else _ANON_TTL_SEC))
        body = _b64(json.dumps({"sid": session.sid, "auth": auth, "exp": int(session.exp)},
                               separators=(",", ":")).encode())
        return session, f"{body}.{self._sign(body)}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie holds, or None when it is missing, forged, malformed or expired."""
        if not cookie or len(cookie) > 512:
            return None
        body, dot, sig = cookie.partition(".")
        if not dot:
            return None
        try:
            expected = self._sign(body)
        except UnicodeEncodeError:
            return None
        if not hmac.compare_digest(sig.encode("ascii", "replace"), expected.encode("ascii")):
            return None
        try:
            data = json.loads(_unb64(body))
            session = Session(sid=str(data["sid"]), auth=data["auth"] is True, exp=float(data["exp"]))
        except (ValueError, KeyError, TypeError):
            return None
        now = time.time() if now is None else now
        return session if session.exp > now else None

    def csrf_token(self, session: Session) -> str:
        return _b64(hmac.new(self._key, b"csrf\0" + session.sid.encode(), hashlib.sha256).digest())

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        if not token:
            return False
        return hmac.compare_digest(token.encode("ascii", "replace"), self.csrf_token(session).encode())


__all__ = ["COOKIE_NAME", "COOKIE_PATH", "Session", "SessionSigner"]
