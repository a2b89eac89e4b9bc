"""Rate limits over ``Counters``: request quotas per identity, and sign-in failure throttling.

An identity is the most specific thing a request proves: its API key, else its user, else its
client address. A refusal raises ``RateLimited`` with the seconds until the window ends, which
the API sends as ``Retry-After``.
"""

from typing import Final

from memetrade.ports import Counters
from memetrade.services.credentials import RateLimited

__all__ = ["MINUTE_MS", "SIGNIN_WINDOW_MS", "RateLimiter", "SigninThrottle", "identity"]

MINUTE_MS: Final = 60_000
# Failed sign-ins for one email from one address are counted over this long.
SIGNIN_WINDOW_MS: Final = 15 * MINUTE_MS


def identity(api_key_id: int | None, user_id: int | None, ip: str | None) -> str:
    """The key a request is counted under."""
    if api_key_id is not None:
        return f"key:{api_key_id}"
    if user_id is not None:
        return f"user:{user_id}"
    return f"ip:{ip or 'unknown'}"


def _seconds(ms: int) -> int:
    return max(1, -(-ms // 1000))


class RateLimiter:
    """At most ``per_minute`` requests per identity in each one-minute window."""

    def __init__(self, counters: Counters, per_minute: int) -> None:
        if per_minute < 1:
            raise ValueError("a rate limit must allow at least one request")
        self._counters = counters
        self.per_minute = per_minute

    async def check(self, who: str) -> None:
        """Count a request of ``who``; raise ``RateLimited`` when it is over the limit."""
        count, left_ms = await self._counters.hit("req:" + who, MINUTE_MS)
        if count > self.per_minute:
            raise RateLimited(
                f"more than {self.per_minute} requests per minute; retry later",
                _seconds(left_ms),
            )


class SigninThrottle:
    """At most ``max_failures`` failed sign-ins per email and client address in
    ``SIGNIN_WINDOW_MS``; once reached, even the right password is refused until the window
    ends, so guessing costs an attacker the whole window. Counting per address as well keeps a
    stranger from locking the owner out from everywhere; a success clears the count."""

    def __init__(self, counters: Counters, max_failures: int) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self._counters = counters
        self.max_failures = max_failures

    @staticmethod
    def _key(email: str, ip: str | None) -> str:
        return f"signin:{email}|{ip or 'unknown'}"

    async def check(self, email: str, ip: str | None) -> None:
        """Raise ``RateLimited`` while this email and address are locked out."""
        failures, left_ms = await self._counters.peek(self._key(email, ip))
        if failures >= self.max_failures:
            raise RateLimited(
                f"too many failed sign-ins for this email from this address; retry in"
                f" {_seconds(left_ms)} s",
                _seconds(left_ms),
            )

    async def failed(self, email: str, ip: str | None) -> None:
        await self._counters.hit(self._key(email, ip), SIGNIN_WINDOW_MS)

    async def succeeded(self, email: str, ip: str | None) -> None:
        await self._counters.reset(self._key(email, ip))
