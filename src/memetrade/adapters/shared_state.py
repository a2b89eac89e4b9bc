"""State shared by API instances, in Redis (``REDIS_URL``): the WebSocket connection cap.

Each instance keeps its own count under ``memetrade:ws:count:<instance>`` and refreshes its
lease in the sorted set ``memetrade:ws:instances`` (score: lease expiry, Redis server time)
every ``LEASE_S / 3`` seconds. Taking a place is one Lua script: drop the counts of instances
whose lease ran out (crashed ones, whose connections are gone with them), sum the others,
and increment our own only if the sum is under the cap; so the cap holds across instances
without a lock, and a crashed instance's places come back within ``LEASE_S``.

If Redis is unreachable the gate fails open: each instance still enforces ``MAX_CONNECTIONS``
on its own (``Hub``), and serving WebSockets matters more than the exact shared figure.
"""

import asyncio
import contextlib
import logging
import os
import socket
import uuid

import redis.asyncio as redis
from redis.exceptions import RedisError

__all__ = ["LEASE_S", "RedisConnectionGate"]

log = logging.getLogger(__name__)

LEASE_S = 15
_INSTANCES = "memetrade:ws:instances"
_COUNT = "memetrade:ws:count:"

_ACQUIRE = """
local now = tonumber(redis.call('TIME')[1])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('DEL', ARGV[4] .. id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
local total = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  total = total + tonumber(redis.call('GET', ARGV[4] .. id) or '0')
end
if total >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', ARGV[4] .. ARGV[2])
return 1
"""

_RENEW = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('SET', ARGV[3] .. ARGV[1], ARGV[4])
return 1
"""


class RedisConnectionGate:
    """``ConnectionGate`` shared through Redis by every instance with the same ``url``."""

    def __init__(self, url: str, max_connections: int) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._max = max_connections
        self.instance = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._acquire = self._client.register_script(_ACQUIRE)
        self._renew = self._client.register_script(_RENEW)
        # Places this instance holds (our truth; Redis's copy is rewritten from it on renew).
        self.held = 0

    async def open(self) -> None:
        try:
            await self._renew_lease()
        except RedisError as exc:
            log.warning("Redis unreachable at start-up (%s): local connection cap only", exc)

    async def close(self) -> None:
        with contextlib.suppress(RedisError):
            await self._client.zrem(_INSTANCES, self.instance)
            await self._client.delete(_COUNT + self.instance)
        await self._client.aclose()

    async def acquire(self) -> bool:
        try:
            args: list[str | int] = [self._max, self.instance, LEASE_S, _COUNT]
            granted = bool(await self._acquire(keys=[_INSTANCES], args=args))
        except RedisError as exc:
            log.warning("Redis unreachable (%s): connection admitted on the local cap", exc)
            granted = True
        if granted:
            self.held += 1
        return granted

    async def release(self) -> None:
        self.held -= 1
        # On failure the next renewal writes the true count.
        with contextlib.suppress(RedisError):
            await self._client.decr(_COUNT + self.instance)

    async def run(self) -> None:
        """Renew this instance's lease (and rewrite its count) until cancelled."""
        while True:
            await asyncio.sleep(LEASE_S / 3)
            try:
                await self._renew_lease()
            except RedisError as exc:
                log.warning("Redis lease renewal failed: %s", exc)

    async def _renew_lease(self) -> None:
        await self._renew(keys=[_INSTANCES], args=[self.instance, LEASE_S, _COUNT, self.held])
