"""Rate limits over both ``Counters``: in memory and in the machine's Redis (skipped when it is
unreachable, failing under ``CI=true``), and the fallback when Redis goes away."""

import os
import secrets
from collections.abc import AsyncIterator

import pytest
import redis

from memetrade.adapters.clock import ManualClock
from memetrade.adapters.rate_counters import MemoryCounters, RedisCounters
from memetrade.ports import Counters
from memetrade.services.credentials import RateLimited
from memetrade.services.rate_limit import RateLimiter, SigninThrottle, identity

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
T0 = 1_700_000_000_000


def _require_redis() -> None:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is unreachable ({exc}); CI=true requires it")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable ({exc})")


@pytest.fixture(params=["memory", "redis"])
async def counters(request: pytest.FixtureRequest) -> AsyncIterator[Counters]:
    made: Counters
    if request.param == "memory":
        made = MemoryCounters(ManualClock(T0))
    else:
        _require_redis()
        made = RedisCounters(REDIS_URL, ManualClock(T0))
    try:
        yield made
    finally:
        await made.close()


def _key() -> str:
    # Redis is shared by every run: each test counts under keys of its own.
    return "test:" + secrets.token_hex(8)


async def test_counts_rise_within_a_window_and_report_its_end(counters: Counters) -> None:
    key = _key()
    assert await counters.peek(key) == (0, 0)
    first = await counters.hit(key, 60_000)
    second = await counters.hit(key, 60_000)
    assert first[0] == 1
    assert second[0] == 2
    assert 0 < second[1] <= 60_000
    count, left = await counters.peek(key)
    assert count == 2
    assert 0 < left <= 60_000
    await counters.reset(key)
    assert await counters.peek(key) == (0, 0)
    assert (await counters.hit(key, 60_000))[0] == 1


async def test_the_limiter_refuses_past_the_limit_with_a_retry_time(counters: Counters) -> None:
    limiter = RateLimiter(counters, 3)
    who = identity(None, None, _key())
    for _ in range(3):
        await limiter.check(who)
    with pytest.raises(RateLimited) as caught:
        await limiter.check(who)
    assert caught.value.code == "rate_limited"
    assert 1 <= caught.value.retry_after_s <= 60
    await limiter.check(identity(None, None, _key()))  # Someone else is not affected.


async def test_sign_in_failures_lock_one_email_and_address_until_success(
    counters: Counters,
) -> None:
    throttle = SigninThrottle(counters, 2)
    email, ip = _key() + "@example.com", "10.1.2.3"
    await throttle.failed(email, ip)
    await throttle.check(email, ip)
    await throttle.failed(email, ip)
    with pytest.raises(RateLimited) as caught:
        await throttle.check(email, ip)
    assert 14 * 60 < caught.value.retry_after_s <= 15 * 60
    await throttle.check(email, "10.9.9.9")  # The owner elsewhere is not locked out.
    await throttle.succeeded(email, ip)
    await throttle.check(email, ip)


def test_identities_prefer_the_key_then_the_user_then_the_address() -> None:
    assert identity(7, 3, "1.2.3.4") == "key:7"
    assert identity(None, 3, "1.2.3.4") == "user:3"
    assert identity(None, None, "1.2.3.4") == "ip:1.2.3.4"


async def test_memory_windows_end_with_the_clock() -> None:
    clock = ManualClock(T0)
    counters = MemoryCounters(clock)
    assert await counters.hit("k", 1_000) == (1, 1_000)
    clock.advance(400)
    assert await counters.hit("k", 1_000) == (2, 600)
    clock.advance(600)
    assert await counters.peek("k") == (0, 0)
    assert await counters.hit("k", 1_000) == (1, 1_000)


async def test_redis_windows_are_shared_between_instances() -> None:
    _require_redis()
    one, two = RedisCounters(REDIS_URL, ManualClock(T0)), RedisCounters(REDIS_URL, ManualClock(T0))
    key = _key()
    try:
        await one.hit(key, 60_000)
        assert (await two.hit(key, 60_000))[0] == 2
    finally:
        await one.close()
        await two.close()


async def test_unreachable_redis_falls_back_to_counting_in_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Port 1 on the loopback: refused at once.
    counters = RedisCounters("redis://127.0.0.1:1/0", ManualClock(T0))
    try:
        limiter = RateLimiter(counters, 1)
        await limiter.check("ip:x")
        with pytest.raises(RateLimited):
            await limiter.check("ip:x")
        assert await counters.peek("req:ip:x") == (2, 60_000)
    finally:
        await counters.close()
    assert "Redis unreachable" in caplog.text
