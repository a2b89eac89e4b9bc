"""The fan-out hub: bounded buffers, conflation, the connection cap."""

import pytest

from memetrade.services.hub import Hub, TooSlow

pytestmark = pytest.mark.anyio


async def test_every_subscriber_of_a_topic_gets_the_same_message_object() -> None:
    hub = Hub(max_connections=10)
    a, b, other = hub.connect(), hub.connect(), hub.connect()
    assert a
    assert b
    assert other
    hub.subscribe(a, "trades:PEPE")
    hub.subscribe(b, "trades:PEPE")
    hub.subscribe(other, "trades:DOGE")
    message = '{"id":"1"}'
    hub.publish("trades:PEPE", message)
    batch_a, batch_b = await a.next_batch(), await b.next_batch()
    assert batch_a == batch_b == [message]
    assert batch_a[0] is batch_b[0]  # encoded once, shared
    assert hub.delivered == 2
    hub.publish("trades:DOGE", "x")
    assert await other.next_batch() == ["x"]


async def test_events_keep_their_order_and_a_subscriber_too_far_behind_is_cut_off() -> None:
    hub = Hub(max_connections=10, max_backlog=3)
    slow, fast = hub.connect(), hub.connect()
    assert slow
    assert fast
    for sub in (slow, fast):
        hub.subscribe(sub, "t")
    for i in range(3):
        hub.publish("t", str(i))
        assert await fast.next_batch() == [str(i)]
    assert await slow.next_batch() == ["0", "1", "2"]
    for i in range(4):  # one more than the backlog allows
        hub.publish("t", str(i))
    with pytest.raises(TooSlow, match="more than 3 messages behind"):
        await slow.next_batch()


async def test_state_updates_keep_only_the_latest_per_key_in_order_of_latest_change() -> None:
    hub = Hub(max_connections=10)
    sub = hub.connect()
    assert sub
    hub.subscribe(sub, "k")
    hub.publish_state("k", 1000, "c1000 v1")
    hub.publish_state("k", 2000, "c2000 v1")
    hub.publish_state("k", 1000, "c1000 v2")
    assert await sub.next_batch() == ["c2000 v1", "c1000 v2"]
    for version in range(10_000):  # conflation bounds memory however slow the reader
        hub.publish_state("k", 3000, f"v{version}")
    assert await sub.next_batch() == ["v9999"]


async def test_the_connection_cap_refuses_then_frees_a_place_on_disconnect() -> None:
    hub = Hub(max_connections=2)
    first, second = hub.connect(), hub.connect()
    assert first
    assert second
    assert hub.connect() is None
    hub.subscribe(first, "t")
    hub.disconnect(first)
    assert hub.connections == 1
    assert not hub.has_subscribers("t")
    assert hub.connect() is not None
