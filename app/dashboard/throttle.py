"""Failed sign-ins are limited per real client address (behind TRUSTED_PROXIES only), so the
operator token cannot be guessed through the sign-in form at speed: after SIGN_IN_FAILURES failed
attempts within a minute, sign-in answers 429 until the window has room - even with the right
token. Counted in this process's memory (each host counts its own)."""

from __future__ import annotations

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from app.config import Settings
from app.intake.client_ip import TrustedProxies, real_client_ip

SIGN_IN_FAILURES = 10  # per minute and client address
_NAMESPACE = "auto-code:dashboard-sign-in"


class SignInThrottle:
    def __init__(self, settings: Settings) -> None:
        self._trusted = TrustedProxies.parse(settings.trusted_proxies)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._item = RateLimitItemPerMinute(SIGN_IN_FAILURES)

    def _client(self, request: Request) -> str:
        return real_client_ip(request.client.host if request.client else None, request.headers, self._trusted)

    def allowed(self, request: Request) -> bool:
        """Room for another attempt (a failure is counted by `failed`)."""
        return bool(self._limiter.test(self._item, _NAMESPACE, self._client(request)))

    def failed(self, request: Request) -> None:
        self._limiter.hit(self._item, _NAMESPACE, self._client(request))


def throttle(request: Request) -> SignInThrottle:
    """One throttle per app (its counts must outlive a request)."""
    state = request.app.state
    found: SignInThrottle | None = getattr(state, "dashboard_sign_in_throttle", None)
    if found is None:
        found = SignInThrottle(state.settings)
        state.dashboard_sign_in_throttle = found
    return found


__all__ = ["SIGN_IN_FAILURES", "SignInThrottle", "throttle"]
