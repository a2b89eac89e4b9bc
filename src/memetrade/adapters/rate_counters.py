"""``Counters`` for rate limits: in this process's memory, or in Redis shared by API instances.

The window is fixed and starts at a key's first event (``INCR``, then ``PEXPIRE`` on the first
count), so a window's end, and the ``Retry-After`` a refusal carries, is exact. The known cost
of a fixed window: a client can fit up to twice the limit around the moment one window ends
and the next begins; for request quotas that is an accepted trade for one key and one round
trip per request.

Why not the ``limits`` library: it does drive redis-py's asyncio client, but through options
typed to take no connection pool, so its client cannot be closed through its API; its in-memory
storage starts expiry tasks nobody awaits; and a refusal's reset time costs a second round trip.
The whole algorithm is the five-line Lua script below.
"""

import logging
from typing import Final

import redis.asyncio as redis
from redis.exceptions import RedisError

from memetrade.ports import Clock

__all__ = ["MemoryCounters", "RedisCounters"]

log = logging.getLogger(__name__)

# Sweep expired windows once this many keys are held, so memory stays bounded by the number of
# identities active within one window.
_SWEEP_AT: Final = 10_000

# KEYS[1]: the counter; ARGV[1]: the window in ms. Returns {count, ms until the window ends}.
# A key without a TTL (left by a crash between INCR and PEXPIRE, which Lua rules out, or set by
# hand) is given one, so no identity is refused forever.
_HIT: Final = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class MemoryCounters:
    """``Counters`` in a dict, timed by ``clock``: one process's own counts."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # key -> (count, window end in epoch ms)
        self._windows: dict[str, tuple[int, int]] = {}

    async def hit(self, key: str, window_ms: int) -> tuple[int, int]:
        now = self._clock.now_ms()
        count, end = self._windows.get(key, (0, 0))
        if end <= now:
            if len(self._windows) >= _SWEEP_AT:
                self._sweep(now)
            count, end = 0, now + window_ms
        self._windows[key] = (count + 1, end)
        return count + 1, end - now

    async def peek(self, key: str) -> tuple[int, int]:
        now = self._clock.now_ms()
        count, end = self._windows.get(key, (0, 0))
        return (count, end - now) if end > now else (0, 0)

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)

    async def close(self) -> None:
        self._windows.clear()

    def _sweep(self, now: int) -> None:
        self._windows = {k: v for k, v in self._windows.items() if v[1] > now}


class RedisCounters:
    """``Counters`` in Redis under ``memetrade:rate:<key>``, shared by every instance with the
    same ``url``.

    If Redis cannot be reached, counting falls back to this instance's memory (and says so in
    the log) rather than failing requests or letting every request through: each instance then
    enforces the limits alone, which is what one instance would do anyway.
    """

    PREFIX: Final = "memetrade:rate:"

    def __init__(self, url: str, clock: Clock) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._hit = self._client.register_script(_HIT)
        self._fallback = MemoryCounters(clock)

    async def hit(self, key: str, window_ms: int) -> tuple[int, int]:
        try:
            count, ttl = await self._hit(keys=[self.PREFIX + key], args=[window_ms])
        except RedisError as exc:
            log.warning("Redis unreachable (%s): rate limits counted by this instance", exc)
            return await self._fallback.hit(key, window_ms)
        return int(count), int(ttl)

    async def peek(self, key: str) -> tuple[int, int]:
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(self.PREFIX + key)
                pipe.pttl(self.PREFIX + key)
                count, ttl = await pipe.execute()
        except RedisError as exc:
            log.warning("Redis unreachable (%s): rate limits counted by this instance", exc)
            return await self._fallback.peek(key)
        if count is None or ttl <= 0:
            return 0, 0
        return int(count), int(ttl)

    async def reset(self, key: str) -> None:
        await self._fallback.reset(key)
        try:
            await self._client.delete(self.PREFIX + key)
        except RedisError as exc:
            log.warning("Redis unreachable (%s): rate limit %s not reset there", exc, key)

    async def close(self) -> None:
        await self._client.aclose()
