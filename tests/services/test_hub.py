"""The fan-out hub: bounded buffers, conflation, the connection cap."""

import pytest

from memetrade.services.hub import Hub, Subscriber, TooSlow, frame_text

pytestmark = pytest.mark.anyio


async def texts(subscriber: Subscriber) -> list[str]:
    return [text for text, _ in await subscriber.next_batch()]


class Socket:
    """A direct writer standing for a connection's transport; ``full`` refuses writes."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.full = False

    def write(self, frame: bytes) -> bool:
        if self.full:
            return False
        self.frames.append(frame)
        return True


def frames(*messages: str) -> list[bytes]:
    return [frame_text(message)[1] for message in messages]


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
    assert batch_a == batch_b == [frame_text(message)]
    assert batch_a[0] is batch_b[0]  # encoded and framed once, shared
    assert hub.delivered == 2
    hub.publish("trades:DOGE", "x")
    assert await texts(other) == ["x"]


async def test_events_keep_their_order_and_a_subscriber_too_far_behind_is_cut_off() -> None:
    hub = Hub(max_connections=10, max_backlog=3)
    slow, fast = hub.connect(), hub.connect()
    assert slow
    assert fast
    for sub in (slow, fast):
        hub.subscribe(sub, "t")
    for i in range(3):
        hub.publish("t", str(i))
        assert await texts(fast) == [str(i)]
    assert await texts(slow) == ["0", "1", "2"]
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
    assert await texts(sub) == ["c2000 v1", "c1000 v2"]
    for version in range(10_000):  # conflation bounds memory however slow the reader
        hub.publish_state("k", 3000, f"v{version}")
    assert await texts(sub) == ["v9999"]


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


def test_frames_are_unmasked_text_frames_with_the_right_length_encoding() -> None:
    short = "héllo"
    assert frame_text(short) == (short, b"\x81\x06" + short.encode())
    long = "x" * 300
    assert frame_text(long)[1] == b"\x81\x7e\x01\x2c" + long.encode()


async def test_a_subscriber_that_keeps_up_gets_frames_written_at_once() -> None:
    hub = Hub(max_connections=10)
    sub = hub.connect()
    assert sub
    socket = Socket()
    sub.enable_direct(socket.write)
    hub.subscribe(sub, "t")
    hub.publish_many("t", ["a", "b"])
    hub.publish_state("t", 1, "c")
    assert socket.frames == frames("a", "b", "c")


async def test_once_anything_is_queued_everything_queues_behind_it_in_order() -> None:
    hub = Hub(max_connections=10)
    sub = hub.connect()
    assert sub
    socket = Socket()
    sub.enable_direct(socket.write)
    hub.subscribe(sub, "t")
    hub.publish("t", "a")
    socket.full = True
    hub.publish_many("t", ["b", "c"])
    socket.full = False  # room again, but "b" and "c" wait in the queue: "d" must follow them
    hub.publish("t", "d")
    hub.publish_state("t", 1, "s")
    assert socket.frames == frames("a")
    assert await texts(sub) == ["b", "c", "d", "s"]
    hub.publish("t", "e")  # the queue is empty again: straight to the socket
    assert socket.frames == frames("a", "e")


async def test_a_publication_cut_by_a_full_socket_queues_its_rest() -> None:
    hub = Hub(max_connections=10)
    sub = hub.connect()
    assert sub
    socket = Socket()
    sub.enable_direct(socket.write)
    hub.subscribe(sub, "t")

    def fill_after_one(frame: bytes) -> bool:
        written = socket.write(frame)
        socket.full = True
        return written

    sub.enable_direct(fill_after_one)
    hub.publish_many("t", ["a", "b", "c"])
    assert socket.frames == frames("a")
    assert await texts(sub) == ["b", "c"]
