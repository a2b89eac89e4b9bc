"""The ``Bus`` contract: the in-process bus and NATS JetStream must pass all of it."""

import secrets
from collections.abc import AsyncIterator

import anyio
import pytest
from bus_backends import BUS_BACKENDS, make_bus

from memetrade.ports import Bus, BusError, Delivery

pytestmark = pytest.mark.anyio


@pytest.fixture(params=BUS_BACKENDS)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    opened = make_bus(request.param)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def token() -> str:
    """A subject token and consumer name of this test's own (the NATS streams are shared)."""
    return "T" + secrets.token_hex(6).upper()


async def next_batch(batches: AsyncIterator[list[Delivery]], within: float = 5) -> list[Delivery]:
    with anyio.fail_after(within):
        return await anext(batches)


async def take(batches: AsyncIterator[list[Delivery]], count: int) -> list[Delivery]:
    got: list[Delivery] = []
    while len(got) < count:
        got += await next_batch(batches)
    return got


async def test_published_messages_are_consumed_in_order(bus: Bus, token: str) -> None:
    for i in range(3):
        await bus.publish(f"trades.{token}", b"m%d" % i)
    batches = bus.consume(f"trades.{token}", f"c{token}", 10)
    got = await take(batches, 3)
    assert [d.data for d in got] == [b"m0", b"m1", b"m2"]
    assert {d.subject for d in got} == {f"trades.{token}"}
    assert not any(d.redelivered for d in got)
    for d in got:
        await d.ack()
    await batches.aclose()


async def test_a_restarted_durable_consumer_resumes_after_what_it_acknowledged(
    bus: Bus, token: str
) -> None:
    for i in range(4):
        await bus.publish(f"trades.{token}", b"m%d" % i)
    first = bus.consume(f"trades.{token}", f"c{token}", 2)
    got = await next_batch(first)
    assert [d.data for d in got] == [b"m0", b"m1"]
    for d in got:
        await d.ack()
    await first.aclose()
    await bus.publish(f"trades.{token}", b"m4")

    again = bus.consume(f"trades.{token}", f"c{token}", 10)
    rest = await take(again, 3)
    assert [d.data for d in rest] == [b"m2", b"m3", b"m4"]
    for d in rest:
        await d.ack()
    await again.aclose()


async def test_unacknowledged_messages_are_delivered_again_after_a_consumer_restart(
    bus: Bus, token: str
) -> None:
    await bus.publish(f"trades.{token}", b"lost-worker")
    first = bus.consume(f"trades.{token}", f"c{token}", 10)
    await next_batch(first)
    await first.aclose()  # The worker died before storing its work: no ack.

    again = bus.consume(f"trades.{token}", f"c{token}", 10)
    (redelivered,) = await next_batch(again, within=10)
    assert redelivered.data == b"lost-worker"
    assert redelivered.redelivered
    await redelivered.ack()
    await again.aclose()


async def test_a_nak_gives_the_message_back_at_once(bus: Bus, token: str) -> None:
    await bus.publish(f"trades.{token}", b"retry-me")
    batches = bus.consume(f"trades.{token}", f"c{token}", 10)
    (delivery,) = await next_batch(batches)
    await delivery.nak()
    (again,) = await next_batch(batches)
    assert again.data == b"retry-me"
    assert again.redelivered
    await again.ack()
    await batches.aclose()


async def test_order_is_kept_per_subject_across_interleaved_subjects(bus: Bus, token: str) -> None:
    for i in range(60):
        await bus.publish(f"trades.{token}.{'AB'[i % 2]}", b"%d" % i)
    batches = bus.consume(f"trades.{token}.*", f"c{token}", 16)
    got = await take(batches, 60)
    for subject in ("A", "B"):
        numbers = [int(d.data) for d in got if d.subject == f"trades.{token}.{subject}"]
        assert numbers == sorted(numbers)
        assert len(numbers) == 30
    for d in got:
        await d.ack()
    await batches.aclose()


async def test_follow_replays_from_a_time_then_goes_live(bus: Bus, token: str) -> None:
    await bus.publish(f"stored.{token}", b"before")
    await anyio.sleep(0.05)
    import time

    since = time.time_ns() // 1_000_000
    await bus.publish(f"stored.{token}", b"after-1")
    await bus.publish(f"stored.{token}", b"after-2")
    follow = bus.follow(f"stored.{token}", since)
    with anyio.fail_after(5):
        assert await anext(follow) == b"after-1"
        assert await anext(follow) == b"after-2"
        await bus.publish(f"stored.{token}", b"live")
        assert await anext(follow) == b"live"
    await follow.aclose()


async def test_live_subjects_reach_current_listeners_only(bus: Bus, token: str) -> None:
    await bus.broadcast(f"candles.{token}.1m", b"nobody-listens")
    listen = bus.listen(f"candles.{token}.>")
    receive = anext(listen)
    async with anyio.create_task_group() as tg:
        got: list[tuple[str, bytes]] = []

        async def read() -> None:
            with anyio.fail_after(5):
                got.append(await receive)

        tg.start_soon(read)
        # The subscription exists once the first ``anext`` ran; give it a moment.
        await anyio.sleep(0.2)
        await bus.broadcast(f"candles.{token}.1m", b"state")
    assert got == [(f"candles.{token}.1m", b"state")]
    await listen.aclose()


async def test_publishing_to_a_live_subject_is_refused(bus: Bus, token: str) -> None:
    with pytest.raises(BusError):
        await bus.publish(f"candles.{token}.1m", b"x")
